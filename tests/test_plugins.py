"""The one plug-in pattern (camera_adapters.plugins): frame sources, engines, processors and models.

Each family is a real registry of real classes: a name, an availability check, typed settings; an unknown name
is the family's own user error listing the known names.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys

import pytest

from camera_adapters.errors import UserFacingError
from camera_adapters.plugins import REQUIRED, Availability, Registry, settings_of
from camera_adapters.settings import ConfigError
from camera_adapters.sources import SOURCES, FrameSource, SourceError, available_sources, get_source_class
from deg_live.engines import EngineError, create_engine, list_engines, probe, probe_all
from deg_live.engines.registry import ENGINES, engine_class
from deg_live.processors import PROCESSORS, ProcessorError, available_processors, create_processor


def _models():
    from deg_train.models.registry import MODELS, UnknownModelError, get_model_class

    return MODELS, UnknownModelError, get_model_class


def _families():
    models, unknown_model, get_model = _models()
    return [
        ("source", SOURCES, get_source_class, ConfigError),
        ("engine", ENGINES, engine_class, EngineError),
        ("processor", PROCESSORS, lambda n: create_processor(n), ProcessorError),
        ("flow model", models["flow"], lambda n: get_model("flow", n), unknown_model),
        ("sequence model", models["sequence"], lambda n: get_model("sequence", n), unknown_model),
    ]


@pytest.mark.parametrize("index", range(5), ids=["sources", "engines", "processors", "flow", "sequence"])
def test_unknown_name_is_a_user_error_listing_every_known_name(index):
    kind, registry, lookup, error = _families()[index]
    with pytest.raises(error) as info:
        lookup("no-such-plugin")
    assert isinstance(info.value, UserFacingError)
    message = str(info.value)
    assert message.startswith(f"unknown {kind} 'no-such-plugin'; known {kind}s: ")
    listed = message.split(": ", 1)[1]
    for name in registry.names():
        assert re.search(rf"\b{re.escape(name)}\b", listed), f"{name} missing from {message!r}"


def test_every_plugin_has_a_name_an_availability_and_typed_settings():
    models, _, _ = _models()
    registries = [SOURCES, ENGINES, PROCESSORS, *models.values()]
    for registry in registries:
        assert registry.names(), registry.kind
        for av in registry.available():
            assert isinstance(av, Availability) and isinstance(av.available, bool) and av.reason, av
            plugin = registry.get(av.name)
            fields = settings_of(plugin)
            assert all(f.name and f.type for f in fields), (registry.kind, av.name)
    # Settings dataclasses where options come as text (YAML, key=value): sources and processors.
    for registry in (SOURCES, PROCESSORS):
        for name in registry.names():
            assert dataclasses.is_dataclass(registry.get(name).Settings), name


def test_availability_is_reported_by_each_family():
    sources = {name: (usable, why) for name, usable, why in available_sources()}
    assert sources["synthetic"] == (True, "built in") and sources["video"][0] is True
    engines = probe_all()
    assert set(engines) == set(list_engines()) == {"onnxruntime", "torch", "tensorrt"}
    assert engines["onnxruntime"].available and "cpu" in engines["onnxruntime"].devices
    assert probe("torch").available and "cpu" in probe("torch").devices
    if not probe("tensorrt").available:
        assert probe("tensorrt").reason  # no GPU or no TensorRT: says which, with the install command
    processors = {a.name: a for a in available_processors()}
    assert processors["print"].available and processors["serial"].reason
    assert probe("nope").available is False and "known engines: auto" in probe("nope").reason


def test_processor_options_are_typed_by_its_settings():
    serial = create_processor("serial port=loop:// pulse_ms=20 invert=false mode=level")
    with serial:
        assert serial.trigger.pulse_ms == 20.0 and serial.mode == "level"
    with pytest.raises(ProcessorError, match="pulse_ms: expected a number, got 'abc'"):
        create_processor("serial port=loop:// pulse_ms=abc")
    with pytest.raises(ProcessorError, match=r"foo: unknown key \(known keys here: behaviour, invert, line"):
        create_processor("serial port=loop:// foo=1")
    with pytest.raises(ProcessorError, match="serial line 'cts': choose one of dtr, rts"):
        create_processor("serial port=loop:// line=cts")
    with pytest.raises(ProcessorError, match="invert: expected true or false, got 'maybe'"):
        create_processor("serial port=loop:// invert=maybe")
    # What the command line took before the options were typed still works: DTR, invert=1, a behaviour named 1.
    with create_processor("serial port=loop:// line=DTR invert=1 behaviour=1 pulse_ms=5") as old_style:
        assert old_style.trigger.line == "dtr" and old_style.trigger.invert is True and old_style.behaviour == "1"
    with pytest.raises(ProcessorError, match="processor 'serial' needs port="):
        create_processor("serial")
    with pytest.raises(ProcessorError, match="pulse_ms must be between 0 and 60000"):
        create_processor("serial port=loop:// pulse_ms=-5")
    with pytest.raises(ProcessorError, match=r"print.*unknown key"):
        create_processor("print every=2")


def test_engine_auto_is_listed_and_unknown_backends_refused_before_loading(tmp_path):
    with pytest.raises(EngineError, match="unknown engine 'onnx'; known engines: auto, onnxruntime, tensorrt, torch"):
        create_engine(None, "onnx")  # type: ignore[arg-type] - refused before the bundle is looked at


class _Ok:
    name = "ok"

    @classmethod
    def availability(cls):
        return True, "always"


class _Broken:
    name = "broken"

    @classmethod
    def availability(cls):
        raise RuntimeError("driver exploded")


def test_registry_helper_rules():
    reg: Registry = Registry("widget", ConfigError, also=("auto",), hint="or a path")
    reg.register(_Ok)
    reg.add(_Broken)
    reg.add("camera_adapters.sources.synthetic:SyntheticSource", "lazy")
    assert reg.names() == ["broken", "lazy", "ok"] and "ok" in reg and "OK" not in reg
    assert reg.availability("ok") == Availability("ok", True, "always")
    broken = reg.availability("broken")
    assert broken.available is False and "probing failed: driver exploded" in broken.reason
    assert reg.get("lazy").__name__ == "SyntheticSource"  # imported on first use
    with pytest.raises(ConfigError, match="unknown widget 'x'; known widgets: auto, broken, lazy, ok, or a path"):
        reg.get("x")
    with pytest.raises(TypeError, match="registered twice"):
        reg.add(_Broken, "ok")
    with pytest.raises(TypeError, match="no widget name"):
        reg.add(object)
    assert reg.availability("x").available is False


def test_settings_of_reads_dataclasses_and_signatures():
    fields = {f.name: f for f in settings_of(get_source_class("synthetic"))}
    assert (fields["width"].type == "int" and fields["width"].default == 640) or fields["width"].default > 0
    serial = {f.name: f for f in settings_of(PROCESSORS.get("serial"))}
    assert serial["port"].default is REQUIRED and serial["pulse_ms"].default == 10.0
    onnx = {f.name: f for f in settings_of(engine_class("onnxruntime"))}
    assert "bundle" not in onnx and onnx["threads"].default is None and onnx["precision"].default == "fp32"


def test_a_new_source_class_is_one_decorator_away():
    code = (
        "from dataclasses import dataclass\n"
        "from camera_adapters.sources import FrameSource, register_source, source_names, available_sources\n"
        "@register_source\n"
        "class Mine(FrameSource):\n"
        "    name = 'mine'\n"
        "    @dataclass\n"
        "    class Settings:\n"
        "        rate: float = 1.0\n"
        "    @classmethod\n"
        "    def availability(cls): return False, 'needs the mine SDK'\n"
        "    def _open(self): ...\n"
        "    def _read(self, timeout): ...\n"
        "    def _close(self): ...\n"
        "print('mine' in source_names(), [r for r in available_sources() if r[0] == 'mine'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True [('mine', False, 'needs the mine SDK')]"
    assert issubclass(get_source_class("synthetic"), FrameSource)
    with pytest.raises(SourceError):  # the base contract still holds: read before open is refused
        get_source_class("synthetic")().read()
