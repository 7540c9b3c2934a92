"""Seeded fuzzing of the bundle reader: 10,000 mutations of a valid manifest, only ``BundleError`` comes out.

Half the mutations work on bytes (flips, cuts, insertions of JSON-significant tokens), half on the JSON structure
(keys dropped or added, values of the wrong type, sign or size, deep nesting). Most are re-hashed into
``manifest.sha256`` so they reach the parser and the validation, as a bundle edited on purpose would; the rest
keep the stale hash and must be caught by it. Every mutation goes through :func:`parse_manifest`, the one decoder
of manifests that :func:`read_bundle` calls on the bytes it reads; the first :data:`N_ON_DISK` also go through
:func:`read_bundle` itself on real files (writing files is slow on some disks, and the fuzz must stay fast), and
both must agree.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import random
import traceback

import pytest
from test_bundle import toy_graphs, toy_manifest

from deg_live.bundle import BundleError, Manifest, parse_manifest, read_bundle, write_bundle

N_MUTATIONS = 10_000
N_ON_DISK = 200
SEED = 20261203

TOKENS = [
    b"{", b"}", b"[", b"]", b",", b":", b'"', b"\\", b"\\u0000", b"\\ud800", b"null", b"true", b"false", b"-",
    b"0", b"-1", b"1e999", b"-0.0", b"NaN", b"Infinity", b"9" * 5000, b"[" * 2000, b"{\"a\":" * 500, b"\xff",
    b"\xc3\x28", b"\x00", b" ", b"\n", b"\xef\xbb\xbf",
]  # fmt: skip
VALUES = [
    None, True, False, 0, -1, 1, 2, 3, 2**31, 2**63, 2**64 + 1, 10**30, -(10**30), 0.5, -0.5, 1.5, 1e308, -1e308,
    5e-324, "", "x", "../../etc/passwd", "/abs/path.onnx", "~/x", "manifest.json", "manifest.sha256", "a" * 10_000,
    "\u0000", "\ud7ff\ue000", "background", "onnx", "zeros", "history", "recurrent", "uint8", "float32", "batch",
    [], [None], [1, 2, 3], [-1], ["a", "a"], [[1]], {}, {"x": 1}, {"onnx": "encoder.onnx"}, {"sha256": "0" * 64},
]  # fmt: skip


def _containers(node, path=()):
    """Every (path, container) in the JSON tree."""
    if isinstance(node, (dict, list)):
        yield path, node
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, child in items:
            yield from _containers(child, (*path, key))


def _random_value(rng: random.Random, depth: int = 0):
    roll = rng.random()
    if roll < 0.75 or depth > 2:
        return copy.deepcopy(rng.choice(VALUES))
    if roll < 0.85:
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    if roll < 0.95:
        return {rng.choice(["a", "files", "shape", "onnx", "sha256", "bytes"]): _random_value(rng, depth + 1)}
    nested: object = 1
    for _ in range(rng.choice([20, 40, 100])):
        nested = [nested]
    return nested


def _node_at(data, path):
    """The container at ``path``, or the root when an earlier mutation removed it."""
    node = data
    try:
        for key in path:
            node = node[key]
    except (KeyError, IndexError, TypeError):
        return data
    return node if isinstance(node, (dict, list)) else data


def mutate_structure(raw: bytes, paths: list, rng: random.Random) -> bytes:
    """Up to three structural edits of the manifest ``raw`` (``paths``: its containers, from :func:`_containers`)."""
    data = json.loads(raw)  # a fresh copy (json is much faster than deepcopy)
    for _ in range(rng.randint(1, 3)):
        node = _node_at(data, rng.choice(paths))
        keys = list(node.keys()) if isinstance(node, dict) else list(range(len(node)))
        action = rng.random()
        if not keys or action < 0.15:  # add an unknown key or an element
            if isinstance(node, dict):
                node[rng.choice(["colour", "extra", "schema_version", "files", "x" * 50])] = _random_value(rng)
            else:
                node.append(_random_value(rng))
        elif action < 0.35:  # drop one
            del node[rng.choice(keys)]
        elif action < 0.85:  # replace a value with anything
            node[rng.choice(keys)] = _random_value(rng)
        elif action < 0.95:  # nudge a number
            key = rng.choice(keys)
            if isinstance(node[key], (int, float)) and not isinstance(node[key], bool):
                node[key] = rng.choice([-node[key], node[key] + 1, node[key] * 1000, 0, node[key] - 0.5])
        else:  # wrap in a list
            key = rng.choice(keys)
            node[key] = [node[key]]
    return json.dumps(data, indent=2 if rng.random() < 0.1 else None, allow_nan=True).encode()


def mutate_bytes(raw: bytes, rng: random.Random) -> bytes:
    data = bytearray(raw)
    for _ in range(rng.randint(1, 4)):
        if not data:
            data += rng.choice(TOKENS)
            continue
        i = rng.randrange(len(data))
        action = rng.random()
        if action < 0.25:
            data[i] ^= 1 << rng.randrange(8)
        elif action < 0.40:
            data[i] = rng.randrange(256)
        elif action < 0.55:
            del data[i : i + rng.randint(1, 40)]
        elif action < 0.80:
            data[i:i] = rng.choice(TOKENS)
        elif action < 0.90:
            j = rng.randrange(len(data))
            data[i:i] = data[min(i, j) : max(i, j)][:500]
        else:
            del data[i:]
    return bytes(data)


@pytest.fixture
def valid_bundle(tmp_path):
    directory = tmp_path / "bundle"
    directory.mkdir()
    toy_graphs(directory)
    write_bundle(directory, toy_manifest())
    return directory


def _outcome(read) -> tuple[str, object]:
    try:
        return "accepted", read()
    except BundleError as err:
        assert str(err) and "Traceback" not in str(err)
        return ("hash" if "does not match" in str(err) else "BundleError"), str(err)


def test_ten_thousand_mutated_manifests_give_only_bundle_errors(valid_bundle):
    rng = random.Random(SEED)
    manifest_path, hash_path = valid_bundle / "manifest.json", valid_bundle / "manifest.sha256"
    raw, stale_hash = manifest_path.read_bytes(), hash_path.read_bytes()
    source = str(manifest_path)
    paths = [path for path, _ in _containers(json.loads(raw))]
    outcomes = {"BundleError": 0, "accepted": 0, "hash": 0}
    for case in range(N_MUTATIONS):
        mutated = mutate_bytes(raw, rng) if case % 2 else mutate_structure(raw, paths, rng)
        sealed = rng.random() < 0.9
        hash_file = f"{hashlib.sha256(mutated).hexdigest()}  manifest.json\n".encode() if sealed else stale_hash
        try:
            kind, result = _outcome(functools.partial(parse_manifest, mutated, hash_file, source=source))
            if kind == "accepted":  # only a really valid manifest, exactly what was sealed
                assert isinstance(result, Manifest) and (sealed or mutated == raw)
                result.validate()
            if case < N_ON_DISK:  # the same bytes as files, through read_bundle: the same verdict
                manifest_path.write_bytes(mutated)
                hash_path.write_bytes(hash_file)
                disk_kind, disk_result = _outcome(functools.partial(read_bundle, valid_bundle))
                # read_bundle also checks the model files against the manifest: it may refuse what parsed.
                assert disk_kind == kind or (kind, disk_kind) == ("accepted", "BundleError"), (result, disk_result)
                if disk_kind == "accepted":
                    assert disk_result.manifest == result
                    disk_result.postprocessor()
        except Exception:  # the point of the test
            pytest.fail(
                f"mutation {case} (seed {SEED}, sealed={sealed}) raised something other than BundleError:\n"
                f"{mutated[:400]!r}\n{traceback.format_exc()}"
            )
        outcomes[kind] += 1
    # The mutations reached every layer: the hash, the parser/validation, and some survived as valid manifests.
    assert outcomes["hash"] > 100 and outcomes["BundleError"] > 5000 and outcomes["accepted"] > 10, outcomes
