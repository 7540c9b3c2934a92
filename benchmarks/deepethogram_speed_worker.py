"""DeepEthogram 0.5's side of ``speed_vs_deepethogram.py``: run by the DeepEthogram venv's python, never ours.

It imports only deepethogram, torch, numpy and the standard library (DeepEthogram's own venv has none of our
packages). It reads one JSON request per line on stdin and answers one JSON line on stdout:

    {"cmd": "setup", "threads": 2, "size": 128, "batch": 8, "forward_batch": 16, "video": ..., "labels": ...,
     "infer_video": ..., "infer_batch": 16, "workers": 1}          -> {"ok": true, "info": {...}}
    {"cmd": "run", "measurement": "infer", "iters": 2}             -> {"ok": true, "times": [s, ...],
                                                                       "items": frames per iteration, "parts": [...]}
    {"cmd": "quit"}

The models are DeepEthogram's deg_f built by its own code from its own configuration (``conf/`` defaults + the
``deg_f`` preset), random weights: ``flow_generator.train.build_model_from_cfg`` (TinyMotionNet) and
``feature_extractor.train.build_model_from_cfg`` (hidden two-stream, two ResNet18), the latter loading the flow
generator from a checkpoint file as DeepEthogram always does.

Measurements (each iteration timed as a whole; training steps split into parts):

- ``infer``: ``feature_extractor.inference.predict_single_video`` over ``infer_video`` (its ``VideoIterable`` and
  DataLoader with ``workers`` reader processes, its validation CPU transforms (OpenCV resize) and GPU transforms,
  batch ``infer_batch`` as its ``extract`` caps it), as ``deepethogram.feature_extractor.inference`` runs it.
- ``forward``: its validation GPU transform and the two-stream forward on a fixed random uint8 batch of
  ``forward_batch`` 11-frame windows (the same array ours gets: numpy's ``default_rng(0)``).
- ``train_flow`` / ``train_feature``: one training step as its Lightning modules do it, without Lightning: a batch
  from its ``VideoDataset`` over ``video`` (random clips, its training CPU transforms, in this process), its training
  GPU augmentation (kornia), forward, its loss (``MotionNetLoss`` with the ``Reconstructor``; ``ClassificationLoss``
  = ``BinaryFocalLoss`` + L2 regularisation, loss weights from the labels as its datasets compute them), backward,
  Adam step.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import traceback

import numpy as np
import torch

PARTS = ("data", "augment", "forward", "backward", "optimiser")


def deg_config(size: int, batch: int, class_names: list[str], workdir: str):
    """DeepEthogram's feature-extractor training configuration, composed as its ``make_config`` does (no project)."""
    from deepethogram.configuration import load_config_by_name
    from omegaconf import OmegaConf

    names = ["config", "augs", "train", "model/flow_generator", "model/feature_extractor", "preset/deg_f"]
    cfg = OmegaConf.merge(*(load_config_by_name(n) for n in names))
    cfg.augs.resize = [size, size]
    cfg.compute.batch_size = batch
    cfg.compute.num_workers = 0
    cfg.reload.latest = False
    pretrained = os.path.join(workdir, "pretrained_models")  # empty: L2 regularisation (from scratch)
    os.makedirs(pretrained, exist_ok=True)
    cfg.project = {"path": workdir, "model_path": workdir, "pretrained_path": pretrained, "class_names": class_names}
    cfg.run = {"type": "train", "model": "feature_extractor"}
    cfg.flow_generator.weights = None
    cfg.feature_extractor.weights = None
    cfg.feature_extractor.reload_imagenet = False  # the CPU patch's switch: from scratch, no download
    return cfg


def read_class_names(labels: str) -> list[str]:
    with open(labels) as f:
        header = f.readline().strip().split(",")
    return [h for h in header if h]


class MeasurementWorker:
    """What both sides' workers answer: ``run(measurement, iters)`` -> per-iteration times (and parts)."""

    def run(self, measurement: str, iters: int) -> dict:
        if measurement == "infer":
            return self.run_infer(iters)
        if measurement == "forward":
            return self.run_forward(iters)
        if measurement in ("train_flow", "train_feature"):
            step, batch = self.train_step(measurement)
            parts = [step() for _ in range(iters)]  # each: seconds per part (PARTS)
            return {"times": [sum(p.values()) for p in parts], "items": batch, "parts": parts}
        raise ValueError(f"unknown measurement {measurement!r}")

    def run_infer(self, iters: int) -> dict:
        raise NotImplementedError

    def run_forward(self, iters: int) -> dict:
        raise NotImplementedError

    def train_step(self, stage: str):
        """``(step() -> {part: seconds}, clips per step)`` for ``train_flow`` or ``train_feature``."""
        raise NotImplementedError


class Worker(MeasurementWorker):
    """DeepEthogram's side."""

    def __init__(self, req: dict):
        from deepethogram.data.augs import get_cpu_transforms, get_gpu_transforms

        torch.set_num_threads(int(req["threads"]))
        torch.manual_seed(0)
        np.random.seed(0)  # noqa: NPY002  (DeepEthogram's dataset draws from the global generator)
        self.req = req
        self.tmp = tempfile.TemporaryDirectory(prefix="deg_speed_")
        self.class_names = read_class_names(req["labels"])
        self.cfg = deg_config(int(req["size"]), int(req["batch"]), self.class_names, self.tmp.name)
        self.cpu_transforms = get_cpu_transforms(self.cfg.augs)
        self.gpu_transforms = get_gpu_transforms(self.cfg.augs, "2d")
        self._infer_model = None
        self._train = {}

    def info(self) -> dict:
        import deepethogram

        return {
            "deepethogram": getattr(deepethogram, "__version__", "0.5"),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "arithmetic": "float32 (DeepEthogram has no CPU autocast)",
            "inference": f"predict_single_video, batch {int(self.req['infer_batch'])}, "
            f"{int(self.req['workers'])} reader process(es)",
        }

    # -- models, built by DeepEthogram's own code ----------------------------------------------------------------
    def two_stream(self, data_info: dict | None = None):
        """``feature_extractor.train.build_model_from_cfg``; the flow generator comes from a checkpoint file."""
        from deepethogram import utils
        from deepethogram.feature_extractor.train import build_model_from_cfg as build_feature_extractor
        from deepethogram.flow_generator.train import build_model_from_cfg as build_flow_generator

        flow_dir = os.path.join(self.tmp.name, "flow_generator")
        if not os.path.isfile(os.path.join(flow_dir, "checkpoint.pt")):
            os.makedirs(flow_dir, exist_ok=True)
            utils.checkpoint(build_flow_generator(self.cfg), flow_dir, 0)
        self.cfg.flow_generator.weights = os.path.join(flow_dir, "checkpoint.pt")
        pos = neg = None
        if data_info is not None:
            pos, neg = data_info["pos"], data_info["neg"]
        *_, model = build_feature_extractor(self.cfg, pos=pos, neg=neg, num_classes=len(self.class_names))
        return model

    def inference_model(self):
        if self._infer_model is None:
            model = self.two_stream()
            model.set_mode("inference")  # as its extract() does
            for p in model.parameters():
                p.requires_grad = False
            self._infer_model = model.eval()
        return self._infer_model

    # -- measurements ----------------------------------------------------------------------------------------------
    def run_infer(self, iters: int) -> dict:
        from deepethogram.feature_extractor.inference import predict_single_video

        model = self.inference_model()
        times = []
        n = 0
        for _ in range(iters):
            t0 = time.perf_counter()
            out = predict_single_video(
                self.req["infer_video"],
                model,
                torch.nn.Sigmoid(),
                self.cfg.feature_extractor.fusion,
                self.cfg.feature_extractor.n_flows + 1,
                self.cfg.augs.normalization.mean,
                "cpu",
                self.cpu_transforms["val"],
                self.gpu_transforms["val"],
                num_workers=int(self.req["workers"]),
                batch_size=int(self.req["infer_batch"]),
            )
            times.append(time.perf_counter() - t0)
            n = int(out["probabilities"].shape[0])
            if float(out["debug"].min()) != 1.0 or float(out["debug"].max()) != 1.0:
                raise RuntimeError("DeepEthogram's inference did not read every frame exactly once")
        return {"times": times, "items": n}

    def run_forward(self, iters: int) -> dict:
        model = self.inference_model()
        size, b = int(self.req["size"]), int(self.req["forward_batch"])
        frames = np.random.default_rng(0).integers(0, 256, (b, 11, size, size, 3), dtype=np.uint8)
        images = torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 4, 1, 2, 3)))  # (B, 3, T, H, W)
        times = []
        with torch.no_grad():
            for _ in range(iters):
                t0 = time.perf_counter()
                model(self.gpu_transforms["val"](images))
                times.append(time.perf_counter() - t0)
        return {"times": times, "items": b}

    def _train_setup(self, stage: str) -> dict:
        from deepethogram.data.datasets import VideoDataset
        from deepethogram.data.utils import make_loss_weight
        from deepethogram.feature_extractor.train import get_criterion as feature_criterion
        from deepethogram.flow_generator.train import build_model_from_cfg as build_flow_generator
        from deepethogram.flow_generator.train import get_criterion as flow_criterion
        from deepethogram.flow_generator.utils import Reconstructor
        from torch.utils.data import default_collate

        cfg = self.cfg
        supervised = stage == "train_feature"
        dataset = VideoDataset(
            [self.req["video"]],
            [self.req["labels"]] if supervised else None,
            frames_per_clip=cfg.flow_generator.n_rgb,
            reduce=False,
            transform=self.cpu_transforms["train"],
            conv_mode="2d",
            mean_by_channels=cfg.augs.normalization.mean,
        )
        if supervised:
            cfg.run.model = "feature_extractor"
            pos_weight, softmax_weight = make_loss_weight(
                dataset.class_counts, dataset.num_pos, dataset.num_neg, weight_exp=cfg.train.loss_weight_exp
            )
            data_info = {"pos": dataset.num_pos, "neg": dataset.num_neg, "pos_weight": pos_weight}
            data_info["loss_weight"] = softmax_weight
            model = self.two_stream(data_info)
            model.set_mode("classifier")
            criterion = feature_criterion(cfg, model, data_info)

            def loss_of(images, batch):
                return criterion(model(images), batch["labels"], model)[0]

        else:
            cfg.run.model = "flow_generator"
            model = build_flow_generator(cfg)
            criterion = flow_criterion(cfg, model)
            reconstructor = Reconstructor(cfg)

            def loss_of(images, batch):
                outputs = model(images)
                downsampled_t0, estimated_t0, flows_reshaped = reconstructor(images, outputs)
                return criterion(batch, downsampled_t0, estimated_t0, flows_reshaped, model)[0]

        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        optimiser = torch.optim.Adam(params, lr=cfg.train.lr, weight_decay=0)  # BaseLightningModule's optimiser
        rng = np.random.default_rng(0)
        batch = int(self.req["batch"])

        def step() -> dict:
            t0 = time.perf_counter()
            items = [dataset[int(i)] for i in rng.integers(0, len(dataset), batch)]
            b = default_collate(items)
            t1 = time.perf_counter()
            with torch.no_grad():
                images = self.gpu_transforms["train"](b["images"]).detach()
            t2 = time.perf_counter()
            loss = loss_of(images, b)
            t3 = time.perf_counter()
            optimiser.zero_grad()
            loss.backward()
            t4 = time.perf_counter()
            optimiser.step()
            t5 = time.perf_counter()
            return dict(zip(PARTS, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)))

        return {"step": step, "batch": batch}

    def train_step(self, stage: str):
        if stage not in self._train:
            self._train[stage] = self._train_setup(stage)
        return self._train[stage]["step"], self._train[stage]["batch"]


def serve(make_worker) -> int:
    """Answer JSON-line requests on stdin (setup / run / quit) on stdout; everything else printed goes to stderr.

    ``make_worker(setup_request)`` returns an object with ``info() -> dict`` and ``run(measurement, iters) -> dict``.
    Ours (``speed_vs_deepethogram.py --worker``) serves with this same function.
    """
    answer = sys.stdout  # the protocol's channel; whatever the libraries print goes to stderr
    sys.stdout = sys.stderr
    worker = None
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        try:
            if req["cmd"] == "quit":
                break
            if req["cmd"] == "setup":
                worker = make_worker(req)
                reply = {"ok": True, "info": worker.info()}
            elif req["cmd"] == "run":
                if worker is None:
                    raise RuntimeError("'run' before 'setup'")
                reply = {"ok": True, **worker.run(req["measurement"], int(req["iters"]))}
            else:
                raise ValueError(f"unknown command {req['cmd']!r}")
        except Exception as err:
            traceback.print_exc()
            reply = {"ok": False, "error": f"{type(err).__name__}: {err}"}
        answer.write(json.dumps(reply) + "\n")
        answer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(serve(Worker))
