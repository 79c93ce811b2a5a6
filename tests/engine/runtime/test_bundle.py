"""Bundle validation: every failure is a BundleError naming file and field."""
import json
import shutil

import pytest

from melsynth.engine.runtime.bundle import BundleError, load_bundle
from tests.bundle_factory import make_tiny_bundle


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return make_tiny_bundle(tmp_path_factory.mktemp("bundle") / "tiny")


@pytest.fixture
def bundle(pristine, tmp_path):
    return shutil.copytree(pristine, tmp_path / "b")


def _edit(root, fn):
    p = root / "bundle.json"
    data = json.loads(p.read_text())
    fn(data)
    p.write_text(json.dumps(data))


def test_valid_bundle_loads(bundle):
    b = load_bundle(bundle)
    assert b.default_vocoder == "classical"
    assert set(b.vocoders) == {"classical", "ap"}
    ap = b.vocoder("ap")
    assert ap.streaming.state[0].zeros().shape == (1, 256, 1)
    assert b.mel.n_mels == 256


def test_missing_bundle_json(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match=r"bundle\.json.*missing"):
        load_bundle(tmp_path / "empty")


def test_missing_onnx_file(bundle):
    (bundle / "voc.onnx").unlink()
    with pytest.raises(BundleError) as e:
        load_bundle(bundle)
    assert "voc.onnx" in str(e.value) and e.value.field == "vocoders.ap.offline.file"


def test_invalid_json(bundle):
    (bundle / "bundle.json").write_text("{not json")
    with pytest.raises(BundleError, match="invalid JSON"):
        load_bundle(bundle)


def test_unknown_schema_version(bundle):
    _edit(bundle, lambda d: d.update(schema_version=99))
    with pytest.raises(BundleError, match="schema_version.*99"):
        load_bundle(bundle)


def test_checksum_mismatch(bundle):
    with open(bundle / "voc_stream.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(BundleError) as e:
        load_bundle(bundle)
    assert e.value.field == "vocoders.ap.streaming.sha256"
    assert "voc_stream.onnx" in e.value.path


def test_onnx_inputs_do_not_match_json(bundle):
    _edit(bundle, lambda d: d["vocoders"]["ap"]["offline"]["inputs"][0].update(name="spectrogram"))
    with pytest.raises(BundleError, match="spectrogram") as e:
        load_bundle(bundle)
    assert e.value.field == "vocoders.ap.offline.inputs"


def test_onnx_output_shape_does_not_match_json(bundle):
    _edit(bundle, lambda d: d["vocoders"]["ap"]["offline"]["outputs"][0].update(shape=[1, 512, "frames"]))
    with pytest.raises(BundleError, match="512") as e:
        load_bundle(bundle)
    assert e.value.field == "vocoders.ap.offline.outputs.real"


def test_offline_graph_is_optional(bundle):
    _edit(bundle, lambda d: d["vocoders"]["ap"].pop("offline"))
    assert load_bundle(bundle).vocoder("ap").offline is None


def test_streaming_graph_needs_one_input_besides_its_state(bundle):
    _edit(bundle, lambda d: d["vocoders"]["ap"]["streaming"]["inputs"].append({"name": "extra", "shape": [1]}))
    with pytest.raises(BundleError, match="exactly one input besides its state") as e:
        load_bundle(bundle, check_graphs=False)
    assert e.value.field == "vocoders.ap.streaming.inputs" and "extra" in str(e.value)


def test_state_pair_must_exist(bundle):
    _edit(bundle, lambda d: d["vocoders"]["ap"]["streaming"]["state"][0].update(output="nope"))
    with pytest.raises(BundleError, match="state"):
        load_bundle(bundle)


@pytest.mark.parametrize("field,value,match", [
    ("sample_rate", 22050, "22050"),
    ("n_mels", 80, "80"),
    ("hop_length", 0, "hop_length"),
])
def test_melspec_the_engine_cannot_serve(bundle, field, value, match):
    _edit(bundle, lambda d: d["mel"].update({field: value}))
    with pytest.raises(BundleError, match=match) as e:
        load_bundle(bundle)
    assert e.value.field.startswith("mel")


def test_unknown_vocoder_kind_and_default(bundle):
    _edit(bundle, lambda d: d["vocoders"]["classical"].update(kind="wavenet"))
    with pytest.raises(BundleError, match="wavenet"):
        load_bundle(bundle)


def test_default_vocoder_must_exist(bundle):
    _edit(bundle, lambda d: d.update(default_vocoder="nope"))
    with pytest.raises(BundleError, match="default_vocoder"):
        load_bundle(bundle)


def test_asking_for_an_unknown_vocoder_names_the_choices(bundle):
    b = load_bundle(bundle)
    with pytest.raises(BundleError, match="classical"):
        b.vocoder("melgan")
