"""The model bundle: write, read, verify, and every way a bundle can be wrong is a BundleError."""

import hashlib
import json
import logging
import shutil
import subprocess
import sys

import numpy as np
import pytest

from deg_live.bundle import (
    BUNDLE_SCHEMA_VERSION,
    BundleError,
    GraphSpec,
    InputSpec,
    Manifest,
    SequenceSpec,
    StateSpec,
    TensorSpec,
    read_bundle,
    write_bundle,
)

BEHAVIOURS = ["background", "grooming", "rearing"]
K, T, H, W = 3, 4, 8, 10
D = 3  # the toy encoder's features: mean colour of the window


def toy_graphs(directory, k=K, d=D):
    """Write a real encoder.onnx (uint8 window -> features, logits) and sequence_step.onnx (feature + state)."""
    import onnx  # part of the train extra the tests need: no skip
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w_enc = numpy_helper.from_array(rng.normal(size=(d, k)).astype(np.float32), "w_enc")
    enc = helper.make_graph(
        [
            helper.make_node("Cast", ["frames"], ["f32"], to=TensorProto.FLOAT),
            helper.make_node("ReduceMean", ["f32"], ["features"], axes=[1, 2, 3], keepdims=0),
            helper.make_node("MatMul", ["features", "w_enc"], ["logits"]),
        ],
        "encoder",
        [helper.make_tensor_value_info("frames", TensorProto.UINT8, ["batch", T, H, W, 3])],
        [
            helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", d]),
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", k]),
        ],
        [w_enc],
    )
    w_seq = numpy_helper.from_array(rng.normal(size=(d, k)).astype(np.float32), "w_seq")
    seq = helper.make_graph(
        [
            helper.make_node("MatMul", ["features", "w_seq"], ["z"]),
            helper.make_node("Sigmoid", ["z"], ["probs"]),
            helper.make_node("Identity", ["history"], ["history_out"]),
        ],
        "sequence_step",
        [
            helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, d]),
            helper.make_tensor_value_info("history", TensorProto.FLOAT, [1, 2, d]),
        ],
        [
            helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, k]),
            helper.make_tensor_value_info("history_out", TensorProto.FLOAT, [1, 2, d]),
        ],
        [w_seq],
    )
    for graph, name in ((enc, "encoder.onnx"), (seq, "sequence_step.onnx")):
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        onnx.save(model, directory / name)


def toy_manifest(**changes) -> Manifest:
    m = Manifest(
        behaviours=list(BEHAVIOURS),
        input=InputSpec(height=H, width=W, frames_per_window=T),
        encoder=GraphSpec(
            files={"onnx": "encoder.onnx"},
            inputs=[TensorSpec("frames", ["batch", T, H, W, 3], "uint8")],
            outputs=[TensorSpec("features", ["batch", D]), TensorSpec("logits", ["batch", K])],
        ),
        sequence=SequenceSpec(
            files={"onnx": "sequence_step.onnx"},
            inputs=[TensorSpec("features", [1, D]), TensorSpec("history", [1, 2, D])],
            outputs=[TensorSpec("probs", [1, K]), TensorSpec("history_out", [1, 2, D])],
            kind="history",
            feature_size=D,
            state=[StateSpec("history", "history_out", [1, 2, D])],
            receptive_field=3,
        ),
        thresholds=[0.5, 0.3, 0.7],
        preset="toy",
        postprocess={"hysteresis": 0.05, "min_duration_frames": [1, 2, 2]},
        training={"project": "rat", "metrics": {"macro_f1": 0.5}},
    )
    for key, value in changes.items():
        setattr(m, key, value)
    return m


@pytest.fixture
def bundle_dir(tmp_path):
    d = tmp_path / "bundle"
    d.mkdir()
    toy_graphs(d)
    (d / "notes.txt").write_text("extra file\n")
    write_bundle(d, toy_manifest(), files=["notes.txt"])
    return d


def reseal(directory):
    """Rewrite manifest.sha256 for the manifest as it is now (what a tool that edits bundles on purpose does)."""
    digest = hashlib.sha256((directory / "manifest.json").read_bytes()).hexdigest()
    (directory / "manifest.sha256").write_text(f"{digest}  manifest.json\n")


def edit_manifest(directory, edit, *, sealed=True):
    """Edit manifest.json; ``sealed``: also update its hash, so the edit reaches the manifest's validation."""
    path = directory / "manifest.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    if sealed:
        reseal(directory)


def test_round_trip(bundle_dir):
    b = read_bundle(bundle_dir)
    assert b.behaviours == BEHAVIOURS
    assert b.thresholds == [0.5, 0.3, 0.7]
    assert b.manifest.schema_version == BUNDLE_SCHEMA_VERSION
    assert b.manifest.created.endswith("Z") and b.manifest.producer
    assert set(b.manifest.files) == {"encoder.onnx", "sequence_step.onnx", "notes.txt"}
    assert b.manifest.files["notes.txt"].bytes == len("extra file\n")
    assert b.model_file("encoder") == bundle_dir.resolve() / "encoder.onnx"
    assert b.model_file("encoder", "torch") is None
    assert b.engine_cache_dir == bundle_dir.resolve() / "engines"
    assert b.postprocess_settings().min_duration_frames == [1, 2, 2]
    assert b.postprocessor().on.tolist() == [0.5, 0.3, 0.7]
    assert read_bundle(bundle_dir / "manifest.json").manifest == b.manifest
    text = (bundle_dir / "manifest.json").read_text()
    assert text.lstrip().startswith(f'{{\n  "schema_version": {BUNDLE_SCHEMA_VERSION}')


def test_graph_io_matches_what_onnxruntime_finds(bundle_dir):
    import onnxruntime as ort  # must be installed everywhere: no skip

    b = read_bundle(bundle_dir)
    enc = ort.InferenceSession(str(b.model_file("encoder")), providers=["CPUExecutionProvider"])
    seq = ort.InferenceSession(str(b.model_file("sequence")), providers=["CPUExecutionProvider"])
    b.check_graph_io("encoder", enc.get_inputs(), enc.get_outputs())
    b.check_graph_io("sequence", seq.get_inputs(), seq.get_outputs())
    # the graph really runs with what the manifest promises
    frames = np.zeros((2, T, H, W, 3), np.uint8)
    features, logits = enc.run(None, {"frames": frames})
    assert features.shape == (2, D) and logits.shape == (2, K)


def test_manifest_contradicting_the_graph(tmp_path):
    import onnxruntime as ort  # must be installed everywhere: no skip

    d = tmp_path / "b"
    d.mkdir()
    toy_graphs(d, k=4)  # the graph has 4 logits, the manifest says 3 behaviours
    b = write_bundle(d, toy_manifest())
    enc = ort.InferenceSession(str(d / "encoder.onnx"), providers=["CPUExecutionProvider"])
    with pytest.raises(BundleError, match="logits"):
        b.check_graph_io("encoder", enc.get_inputs(), enc.get_outputs())
    with pytest.raises(BundleError, match="inputs"):
        b.check_graph_io("encoder", [("images", ["b", T, H, W, 3])], enc.get_outputs())
    with pytest.raises(BundleError, match="uint8"):
        b.check_graph_io("encoder", [("frames", [1, T, H, W, 3], "tensor(float)")], enc.get_outputs())


def test_missing_file(bundle_dir):
    (bundle_dir / "sequence_step.onnx").unlink()
    with pytest.raises(BundleError, match=r"sequence_step\.onnx"):
        read_bundle(bundle_dir)
    read_bundle(bundle_dir, verify=False)  # the manifest itself is fine


def test_changed_byte(bundle_dir):
    path = bundle_dir / "encoder.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"encoder.onnx.*changed"):
        read_bundle(bundle_dir)


def test_missing_manifest_and_bad_json(tmp_path, bundle_dir):
    with pytest.raises(BundleError, match="no such bundle"):
        read_bundle(tmp_path / "nothing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BundleError, match=r"manifest\.json is missing"):
        read_bundle(empty)
    (bundle_dir / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        read_bundle(bundle_dir)


def test_newer_schema(bundle_dir):
    edit_manifest(bundle_dir, lambda m: m.update(schema_version=BUNDLE_SCHEMA_VERSION + 1))
    with pytest.raises(BundleError, match="upgrade deg-live"):
        read_bundle(bundle_dir)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda m: m.update(thresholds=[0.5, 0.5]), "thresholds: 2 values for 3 behaviours"),
        (lambda m: m.update(behaviours=["a", "a", "b"]), "unique"),
        (lambda m: m["encoder"]["outputs"][1].update(shape=["batch", 5]), "logits"),
        (lambda m: m["sequence"]["outputs"][0].update(shape=[1, 2]), "behaviours"),
        (lambda m: m["sequence"].update(feature_size=7), "feature_size"),
        (lambda m: m["input"].update(frames_per_window=11), "encoder input"),
        (lambda m: m["sequence"]["state"][0].update(output="other"), "state"),
        (lambda m: m["postprocess"].update(min_duration_frames=[1, 2]), "min_duration_frames"),
        (lambda m: m.update(thresholds=[0.5, 0.5, "high"]), "thresholds"),
        (lambda m: m.update(colour="bgr"), "unknown key"),
        (lambda m: m["input"].update(color="bgr"), "input.color"),
        (lambda m: m["encoder"]["files"].update(onnx="../elsewhere.onnx"), "relative"),
        (lambda m: m["files"].pop("encoder.onnx"), "not listed"),
        (lambda m: m.pop("behaviours"), "behaviours"),
    ],
)
def test_contradictions_and_wrong_types(bundle_dir, edit, match):
    edit_manifest(bundle_dir, edit)
    with pytest.raises(BundleError, match=match):
        read_bundle(bundle_dir)


def test_write_bundle_refuses_bad_input(tmp_path):
    d = tmp_path / "b"
    d.mkdir()
    with pytest.raises(BundleError, match="does not exist"):
        write_bundle(d, toy_manifest())
    toy_graphs(d)
    with pytest.raises(BundleError, match="thresholds"):
        write_bundle(d, toy_manifest(thresholds=[0.5]))
    assert not (d / "manifest.json").exists()  # nothing written for a bad manifest
    outside = tmp_path / "outside.txt"
    outside.write_text("x")
    with pytest.raises(BundleError, match="not inside"):
        write_bundle(d, toy_manifest(), files=[outside])


def test_moved_bundle_still_reads(bundle_dir, tmp_path):
    moved = shutil.copytree(bundle_dir, tmp_path / "moved")
    assert read_bundle(moved).directory == moved.resolve()


def test_reading_a_bundle_imports_no_torch(bundle_dir):
    code = (
        "import sys\n"
        "from deg_live.bundle import read_bundle\n"
        f"b = read_bundle({str(bundle_dir)!r})\n"
        "b.postprocess_settings()\n"
        "print(','.join(m for m in ('torch', 'deg_train') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


# ------------------------------------------------------------------------------------------- manifest hash


def test_manifest_hash_is_written_in_sha256sum_format(bundle_dir):
    line = (bundle_dir / "manifest.sha256").read_text()
    assert line == f"{hashlib.sha256((bundle_dir / 'manifest.json').read_bytes()).hexdigest()}  manifest.json\n"
    if shutil.which("sha256sum"):  # the standard tool checks it too
        out = subprocess.run(["sha256sum", "-c", "manifest.sha256"], cwd=bundle_dir, capture_output=True, text=True)
        assert out.returncode == 0 and "manifest.json: OK" in out.stdout


def test_an_edited_threshold_is_one_clear_error(bundle_dir):
    path = bundle_dir / "manifest.json"
    path.write_text(path.read_text().replace("0.3", "0.05", 1))  # a hand edit, as a user would make it
    with pytest.raises(BundleError, match=r"manifest\.json does not match manifest\.sha256.*re-export") as info:
        read_bundle(bundle_dir)
    assert str(bundle_dir) in str(info.value)
    with pytest.raises(BundleError, match="does not match"):
        read_bundle(bundle_dir, verify=False)  # the manifest is always checked
    # Whitespace counts too: the hash is over the bytes, as sha256sum sees them.
    reseal(bundle_dir)
    read_bundle(bundle_dir)
    path.write_text(path.read_text() + "\n")
    with pytest.raises(BundleError, match="does not match"):
        read_bundle(bundle_dir)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (None, r"manifest\.sha256 is missing.*re-export"),
        ("not a hash\n", "expected one line"),
        ("0" * 64 + "  other.json\n", "expected one line"),
        (b"\xff\xfe garbage", "cannot read"),
    ],
)
def test_missing_or_malformed_hash_file(bundle_dir, content, match):
    target = bundle_dir / "manifest.sha256"
    if content is None:
        target.unlink()
    elif isinstance(content, bytes):
        target.write_bytes(content)
    else:
        target.write_text(content)
    with pytest.raises(BundleError, match=match):
        read_bundle(bundle_dir)


def test_schema_1_bundle_without_hash_is_read_with_a_loud_warning(bundle_dir, caplog):
    """Bundles exported before manifests were hashed: still read (not re-export-or-nothing), but never quietly."""
    edit_manifest(bundle_dir, lambda m: m.update(schema_version=1), sealed=False)
    (bundle_dir / "manifest.sha256").unlink()
    caplog.set_level(logging.WARNING, logger="deg_live.bundle")
    b = read_bundle(bundle_dir)
    assert b.manifest.schema_version == 1 and b.thresholds == [0.5, 0.3, 0.7]
    warning = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert (
        warning
        and "UNCHECKED BUNDLE MANIFEST" in warning[0].getMessage()
        and "re-export" in warning[0].getMessage().lower()
    )
    # A schema-1 manifest that has a hash file is checked against it.
    reseal(bundle_dir)
    edit_manifest(bundle_dir, lambda m: m.update(thresholds=[0.5, 0.3, 0.9]), sealed=False)
    with pytest.raises(BundleError, match="does not match"):
        read_bundle(bundle_dir)
    # Writing it again gives the current schema, with its hash.
    write_bundle(bundle_dir, toy_manifest(schema_version=1))
    assert read_bundle(bundle_dir).manifest.schema_version == BUNDLE_SCHEMA_VERSION


def test_the_hash_file_cannot_be_listed_as_a_bundle_file(bundle_dir):
    with pytest.raises(BundleError, match="cannot be listed"):
        write_bundle(bundle_dir, toy_manifest(), files=["manifest.sha256"])


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"a": ' * 40 + "1" + "}" * 40, "nested deeper than"),
        ('{"schema_version": 2, "n": ' + "9" * 5000 + "}", "not valid JSON"),
        ('{"schema_version": 2, "thresholds": [NaN, Infinity]}', "not valid JSON"),
        ("\ufeff{}", "not valid JSON"),
    ],
)
def test_hostile_manifest_text_is_one_named_error(bundle_dir, text, match):
    (bundle_dir / "manifest.json").write_text(text)
    reseal(bundle_dir)
    with pytest.raises(BundleError, match=match):
        read_bundle(bundle_dir)


def test_oversized_manifest_is_refused_before_parsing(bundle_dir, monkeypatch):
    import deg_live.bundle as bundle_module

    monkeypatch.setattr(bundle_module, "MAX_MANIFEST_BYTES", 1000)
    (bundle_dir / "manifest.json").write_text(json.dumps({"pad": "x" * 2000}))
    with pytest.raises(BundleError, match="larger than"):
        read_bundle(bundle_dir)
