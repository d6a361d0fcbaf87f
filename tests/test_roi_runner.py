"""The model contract, the runner (batches, fp16, fixed batch, S=256) and provider choice."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from avatarkit.errors import AvatarkitError, AvatarkitWarning
from avatarkit.roi import OnnxRunner, RunnerOptions, providers
from tests.roi_cases import audio_driven_model, reference_outputs, wrong_signature_model

CPU = RunnerOptions(provider="cpu", intra_op_threads=1)


def _inputs(n: int, size: int = 96, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mels = rng.uniform(-4, 4, (n, 1, 80, 16)).astype(np.float32)
    faces = rng.uniform(0, 1, (n, 6, size, size)).astype(np.float32)
    return mels, faces


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    return {
        "audio": audio_driven_model(d / "audio.onnx"),
        "fp16": audio_driven_model(d / "fp16.onnx", fp16=True),
        "fixed1": audio_driven_model(d / "fixed1.onnx", batch=1),
        "s256": audio_driven_model(d / "s256.onnx", size=256, batch="batch_size"),
        "renamed": audio_driven_model(d / "renamed.onnx", names=("input_a", "input_b")),
        "wrong": wrong_signature_model(d / "wrong.onnx"),
    }


def test_contract_and_batched_run(models):
    runner = OnnxRunner(models["audio"], RunnerOptions(provider="cpu", max_batch=2))
    c = runner.contract
    assert (c.audio, c.face, c.output, c.size, c.batch) == (
        "mel_spectrogram", "video_frames", "output", 96, None)
    assert runner.provider == "cpu" and runner.batch_limit == 2
    mels, faces = _inputs(5)
    out = runner.run(mels, faces)  # 3 calls of 2, 2, 1
    assert out.shape == (5, 3, 96, 96) and out.dtype == np.float32
    np.testing.assert_allclose(out, np.clip(reference_outputs(mels, faces), 0, 1), atol=1e-5)


def test_inputs_found_by_shape_not_name(models):
    runner = OnnxRunner(models["renamed"], CPU)
    assert (runner.contract.audio, runner.contract.face) == ("input_a", "input_b")
    mels, faces = _inputs(2)
    np.testing.assert_allclose(runner.run(mels, faces), np.clip(reference_outputs(mels, faces),
                                                                 0, 1), atol=1e-5)


def test_input_order_does_not_matter(tmp_path):
    """Face first, audio second, unusual names: still recognised by shape."""
    path = audio_driven_model(tmp_path / "m.onnx", names=("x1", "x0"))
    model = onnx.load(str(path))
    inputs = list(model.graph.input)
    del model.graph.input[:]
    model.graph.input.extend(reversed(inputs))
    onnx.save(model, str(path))
    runner = OnnxRunner(path, CPU)
    assert (runner.contract.audio, runner.contract.face) == ("x1", "x0")


def test_wrong_signature_names_expected_and_found(models):
    with pytest.raises(AvatarkitError) as err:
        OnnxRunner(models["wrong"], CPU)
    msg = str(err.value)
    assert "wrong.onnx is not a Wav2Lip-compatible model" in msg
    assert "[B,6,S,S]" in msg and "[B,1,80,16]" in msg  # expected
    assert "video_frames [B,3,96,96]" in msg  # found


def test_fp16_model(models):
    runner = OnnxRunner(models["fp16"], CPU)
    assert runner.contract.input_dtype is np.float16
    mels, faces = _inputs(3)
    out = runner.run(mels, faces)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, np.clip(reference_outputs(mels, faces), 0, 1), atol=2e-3)


def test_fixed_batch_model_is_padded(models):
    runner = OnnxRunner(models["fixed1"], RunnerOptions(provider="cpu", max_batch=8))
    assert runner.contract.batch == 1 and runner.batch_limit == 1
    mels, faces = _inputs(3)
    np.testing.assert_allclose(runner.run(mels, faces),
                               np.clip(reference_outputs(mels, faces), 0, 1), atol=1e-5)


def test_larger_face_size(models):
    runner = OnnxRunner(models["s256"], CPU)
    assert runner.size == 256 and runner.contract.batch is None
    mels, faces = _inputs(2, 256)
    np.testing.assert_allclose(runner.run(mels, faces),
                               np.clip(reference_outputs(mels, faces), 0, 1), atol=1e-5)


def test_wrong_input_shapes_to_run(models):
    runner = OnnxRunner(models["audio"], CPU)
    mels, faces = _inputs(2)
    with pytest.raises(AvatarkitError, match=r"face \[B,6,96,96\]"):
        runner.run(mels, faces[:, :, :64, :64])


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(AvatarkitError, match="not found"):
        OnnxRunner(tmp_path / "nope.onnx", CPU)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not a protobuf")
    with pytest.raises(AvatarkitError, match="could not load the ONNX model bad.onnx"):
        OnnxRunner(bad, CPU)


def test_too_many_inputs(tmp_path):
    ins = [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in
           [("a", [1, 1, 80, 16]), ("b", [1, 6, 96, 96]), ("c", [1])]]
    out = [helper.make_tensor_value_info("o", TensorProto.FLOAT, [1, 6, 96, 96])]
    graph = helper.make_graph([helper.make_node("Identity", ["b"], ["o"])], "g", ins, out)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "three.onnx"))
    with pytest.raises(AvatarkitError, match="3 inputs instead of 2"):
        OnnxRunner(tmp_path / "three.onnx", CPU)


GPU_BOX = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


def test_provider_preference_and_override():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert providers.choose(RunnerOptions(), GPU_BOX) == ["tensorrt", "cuda", "cpu"]
        assert providers.choose(RunnerOptions(), GPU_BOX[1:]) == ["cuda", "cpu"]
        assert providers.choose(RunnerOptions(provider="cuda"), GPU_BOX) == ["cuda", "cpu"]
        assert providers.choose(RunnerOptions(provider="cpu"), GPU_BOX) == ["cpu"]
    with pytest.warns(AvatarkitWarning, match="no GPU execution provider"):
        assert providers.choose(RunnerOptions(), ["CPUExecutionProvider"]) == ["cpu"]


@pytest.mark.parametrize("asked", ["cuda", "tensorrt"])
def test_missing_provider_is_an_error(asked):
    with pytest.raises(AvatarkitError, match=f"'{asked}' is not available.*onnxruntime-gpu"):
        providers.choose(RunnerOptions(provider=asked), ["CPUExecutionProvider"])


def test_real_session_on_this_machine(models):
    """Whatever this onnxruntime offers, an explicit missing GPU provider fails at load."""
    have = providers.available()
    if "CUDAExecutionProvider" not in have:
        with pytest.raises(AvatarkitError, match="'cuda' is not available"):
            OnnxRunner(models["audio"], RunnerOptions(provider="cuda"))
        with pytest.warns(AvatarkitWarning):
            assert OnnxRunner(models["audio"], RunnerOptions()).provider == "cpu"


def test_fallback_detected_after_load():
    opts = RunnerOptions()
    with pytest.warns(AvatarkitWarning, match="could not start the 'cuda' provider"):
        assert providers.check_active(["cuda", "cpu"], ["CPUExecutionProvider"], opts) == "cpu"
    with pytest.raises(AvatarkitError, match="could not start"):
        providers.check_active(["cuda", "cpu"], ["CPUExecutionProvider"],
                               RunnerOptions(provider="cuda"))


def test_thread_settings_are_explicit():
    so = providers.session_options(RunnerOptions(intra_op_threads=3, inter_op_threads=2))
    assert (so.intra_op_num_threads, so.inter_op_num_threads) == (3, 2)
    assert providers.session_options(RunnerOptions()).intra_op_num_threads >= 1
    with pytest.raises(AvatarkitError, match="unknown provider 'gpu'"):
        RunnerOptions(provider="gpu").validate()
