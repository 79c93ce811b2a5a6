"""engine and app must work with torch absent."""
import subprocess
import sys
import textwrap


def test_engine_and_app_import_without_torch():
    code = textwrap.dedent("""
        import importlib, pkgutil, sys
        class BlockTorch:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("torch is blocked in this test")
                return None
        sys.meta_path.insert(0, BlockTorch())
        import engine, app
        names = []
        for pkg in (engine, app):
            for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
                importlib.import_module(m.name)
                names.append(m.name)
        from app.cli import build_parser
        build_parser().format_help()
        assert "torch" not in sys.modules
        print(len(names))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) >= 3
