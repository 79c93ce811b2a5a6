"""Status panel: engine figures, audio device and block size, model bundle chooser, messages."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QToolButton,
                               QVBoxLayout, QWidget)

from melsynth.app.widgets.elided import ElidedLabel

BLOCK_SIZES = (0, 64, 128, 256, 512, 1024, 2048)  # 0 = the device's own choice
NO_DEVICE = "(no audio device)"
MESSAGE_LINES = 4
LEADS_MS = (0.0, 6.0, 12.0, 20.0, 30.0, 50.0)  # 0 = adaptive: as late as this machine has lately allowed


class StatusPanel(QGroupBox):
    """Read-outs of ``SynthStatus`` and the device / bundle choosers."""

    deviceChosen = Signal(object, int)  # device name (None = default), block size (0 = device's)
    bundleChosen = Signal(str)  # folder
    bundleBrowseRequested = Signal()
    vocoderChosen = Signal(str)
    leadChosen = Signal(float)  # ms; 0 = adaptive
    qualityChosen = Signal(str)  # phase quality preset (engine.dsp.quality)

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Engine", parent)
        self.model = QLabel("-")
        self.cpu = QLabel("-")
        self.latency = QLabel("-")
        self.underruns = QLabel("-")
        self.rate = QLabel("-")
        form = QFormLayout()
        form.addRow("model", self.model)
        form.addRow("CPU load", self.cpu)
        form.addRow("latency", self.latency)
        form.addRow("underruns", self.underruns)
        form.addRow("device rate", self.rate)

        self.device = QComboBox()
        self.device.setToolTip("Audio output device")
        self.device.setMinimumContentsLength(10)
        self.device.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.blocksize = QComboBox()
        for b in BLOCK_SIZES:
            self.blocksize.addItem("device default" if b == 0 else f"{b} frames", b)
        self.blocksize.setCurrentIndex(BLOCK_SIZES.index(256))
        self.blocksize.setToolTip("Audio block size (smaller: less latency, more risk of underruns)")
        self.rescan = QToolButton(text="Rescan")
        self.rescan.setToolTip("Look for audio devices again and (re)start sound on the chosen one")
        self.rescan.setFocusPolicy(Qt.NoFocus)
        dev_row = QHBoxLayout()
        dev_row.addWidget(self.device, 1)
        dev_row.addWidget(self.rescan)
        form.addRow("device", dev_row)
        form.addRow("block", self.blocksize)
        self.lead = QComboBox()
        for ms in LEADS_MS:
            self.lead.addItem(_lead_text(ms), ms)
        self.lead.setToolTip("How early each step reaches the device. auto: as late as this machine has "
                             "lately allowed (least latency). More: fewer clicks on a machine that stalls, "
                             "and as much more knob latency.")
        form.addRow("lead", self.lead)

        self.bundle = QComboBox()
        self.bundle.setPlaceholderText("none")  # shown while no bundle plays
        self.bundle.setToolTip("Model bundle (switching crossfades without stopping)")
        self.bundle.setMinimumContentsLength(10)
        self.bundle.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.browse = QToolButton(text="\u2026")
        self.browse.setToolTip("Open another bundle folder")
        self.browse.setFocusPolicy(Qt.NoFocus)
        b_row = QHBoxLayout()
        b_row.addWidget(self.bundle, 1)
        b_row.addWidget(self.browse)
        form.addRow("bundle", b_row)
        self.vocoder = QComboBox()
        self.vocoder.setToolTip("Vocoder of the bundle")
        form.addRow("vocoder", self.vocoder)
        self.quality = QComboBox()
        self.quality.setMinimumContentsLength(10)  # long descriptions never widen the panel
        self.quality.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.quality.setToolTip("Phase quality of the classical vocoder: more Griffin-Lim iterations and "
                                "look-ahead sound closer to the original, cost the CPU shown and add the "
                                "look-ahead (23 ms a frame) to the latency. Switching crossfades.")
        form.addRow("phase", self.quality)

        self.message = ElidedLabel("", lines=MESSAGE_LINES)  # a long error never pushes the panels below down
        self.message.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.message.setStyleSheet("color: #e0a040;")
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.message)

        self.device.activated.connect(lambda _i: self._device_chosen())
        self.blocksize.activated.connect(lambda _i: self._device_chosen())
        self.rescan.clicked.connect(self._device_chosen)
        self.bundle.activated.connect(lambda _i: self._bundle_chosen())
        self.browse.clicked.connect(self.bundleBrowseRequested)
        self.vocoder.activated.connect(lambda _i: self.vocoderChosen.emit(self.vocoder.currentText()))
        self.lead.activated.connect(lambda _i: self.leadChosen.emit(float(self.lead.currentData())))
        self.quality.activated.connect(lambda _i: self.qualityChosen.emit(self.quality.currentData()))

    # choosers ---------------------------------------------------------------------
    def set_devices(self, names: list[str], current: str | None) -> None:
        self.device.blockSignals(True)
        self.device.clear()
        if not names:
            self.device.addItem(NO_DEVICE, None)
        for n in names:
            self.device.addItem(n, n)
        if current is not None:
            i = self.device.findData(current)
            if i >= 0:
                self.device.setCurrentIndex(i)
        self.device.blockSignals(False)

    def set_bundles(self, folders: list[Path], current: Path | None) -> None:
        self.bundle.blockSignals(True)
        self.bundle.clear()
        for f in folders:
            self.bundle.addItem(f.name, str(f))
            self.bundle.setItemData(self.bundle.count() - 1, str(f), Qt.ToolTipRole)
        self.bundle.blockSignals(False)
        self.show_bundle(current)

    def show_bundle(self, current: Path | None) -> None:
        """Select ``current`` (the bundle playing; None: none, the box shows "none") without signals."""
        self.bundle.blockSignals(True)
        i = -1
        if current is not None:
            i = self.bundle.findData(str(current))
            if i < 0:
                self.bundle.addItem(current.name, str(current))
                i = self.bundle.count() - 1
        self.bundle.setCurrentIndex(i)
        self.bundle.blockSignals(False)

    def set_vocoders(self, names: list[str], current: str | None) -> None:
        self.vocoder.blockSignals(True)
        self.vocoder.clear()
        self.vocoder.addItems(names)
        if current in names:
            self.vocoder.setCurrentText(current)
        self.vocoder.blockSignals(False)

    def set_qualities(self, descriptions: dict[str, str], current: str) -> None:
        """The phase quality presets (name -> "name: what, CPU cost"), ``current`` chosen, without signals."""
        self.quality.blockSignals(True)
        self.quality.clear()
        for name, text in descriptions.items():
            self.quality.addItem(text, name)
        self.quality.setCurrentIndex(max(0, self.quality.findData(current)))
        self.quality.blockSignals(False)

    def set_lead(self, ms: float) -> None:
        """Show ``ms`` as the chosen lead (a value not in the list joins it)."""
        ms = float(ms)
        i = self.lead.findData(ms)
        if i < 0:
            self.lead.addItem(_lead_text(ms), ms)
            i = self.lead.count() - 1
        self.lead.setCurrentIndex(i)

    def _device_chosen(self) -> None:
        self.deviceChosen.emit(self.device.currentData(), int(self.blocksize.currentData()))

    def _bundle_chosen(self) -> None:
        data = self.bundle.currentData()
        if data:
            self.bundleChosen.emit(data)

    # read-outs ----------------------------------------------------------------------
    def show_status(self, status) -> None:
        """``status``: engine.stream.synth.SynthStatus (or anything with its fields)."""
        self.cpu.setText(f"{100.0 * getattr(status, 'cpu_load', 0.0):.0f} %")
        lat = getattr(status, "latency_ms", None)
        self.latency.setText(f"{lat:.1f} ms" if lat else "-")
        self.underruns.setText(str(getattr(status, "underruns", 0)))
        rate, block = getattr(status, "sample_rate", None), getattr(status, "blocksize", None)
        self.rate.setText(f"{rate} Hz, block {block}" if getattr(status, "playing", False) and rate else "-")
        bundle, vocoder = getattr(status, "bundle", None), getattr(status, "vocoder", None)
        if bundle:
            self.model.setText(f"{bundle} / {vocoder}" + (" (swapping)" if getattr(status, "swapping", False)
                                                         else ""))

    def show_message(self, text: str) -> None:
        self.message.setText(text)


def _lead_text(ms: float) -> str:
    return "auto" if ms == 0 else f"at least {ms:g} ms"
