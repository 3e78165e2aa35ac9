#!/usr/bin/env python3
"""index.h5 read by plain h5py (checkpoints/FORMAT.md "index.h5"), as a user outside the trainer would.

Trains `tiny` for 2 steps with ortho_megatron (OrthoAdam, --ortho-block 64, so most tensors are several
optimizer units), then, from a working directory that holds nothing of the run:
  * every checked tensor of index.h5 (/model and /optimizer/exp_avg{,_sq}) has the manifest's shape and is
    bitwise the tensor assembled from the shard file's unit datasets (FORMAT.md "shard_tp{t}_dp{d}.h5"),
    whose units tile it exactly;
  * the same holds for a copy of the step directory elsewhere (sources resolve relative to index.h5);
  * negative control: index.h5 copied without its shards does not reproduce the tensor (h5py either
    fails or returns the fill value), so the comparison above can fail;
  * `ortho_ckpt verify` accepts the step directory, and rejects (exit 1, naming the tensor) copies whose
    index.h5 "units" attribute lost a unit (a gap) or repeats one (an overlap), re-checksummed in
    manifest.json so that the coverage check, not the CRC, is what fails.
Exit status: 0 pass, 1 fail, 77 skipped (no h5py/numpy for this interpreter; ctest SKIP_RETURN_CODE).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zlib

SKIP = 77

# Tensors checked: a square matrix of 4 units, an (ffn, C) matrix whose last unit is partial
# (688 = 10 * 64 + 48), a 1-D norm gain, and the embedding (one unit: 64 rows = one block).
CHECKED = ["layers.0.attn.q.weight", "layers.3.mlp.gate.weight", "layers.1.attn_norm.weight", "embed.weight"]


def expected_shape(name, model):
    c, f, v = model["hidden"], model["ffn"], model["vocab_size"]
    if name.endswith("norm.weight"):
        return (c,)
    if ".mlp.gate." in name or ".mlp.up." in name:
        return (f, c)
    if ".mlp.down." in name:
        return (c, f)
    if name in ("embed.weight", "lm_head.weight"):
        return (v, c)
    return (c, c)


def text(attr):
    return attr.decode() if isinstance(attr, (bytes, bytearray)) else str(attr)


def assemble(h5py, np, step_dir, units, name, group):
    """The logical tensor `name` put together from the shard files' `group` unit datasets; also a mask
    of how many units covered each element."""
    mine = [u for u in units if u["logical"] == name]
    if not mine:
        raise AssertionError(f"index.h5 lists no unit of {name}")
    shape = tuple(mine[0]["shape"])
    out = np.zeros(shape, dtype=np.float32)
    hits = np.zeros(shape, dtype=np.int32)
    for u in mine:
        key = f"{group}/{name}/r{u['row0']}_c{u['col0']}"
        with h5py.File(os.path.join(step_dir, u["file"]), "r") as shard:
            block = shard[key][()]
        rows = slice(u["row0"], u["row0"] + u["rows"])
        if len(shape) == 2:
            cols = slice(u["col0"], u["col0"] + u["cols"])
            assert block.shape == (u["rows"], u["cols"]), f"{key}: shape {block.shape}"
            out[rows, cols] = block
            hits[rows, cols] += 1
        else:
            assert block.shape == (u["rows"],), f"{key}: shape {block.shape}"
            out[rows] = block
            hits[rows] += 1
    return out, hits, len(mine)


def check_step_dir(h5py, np, step_dir, label):
    """Opens step_dir/index.h5 by absolute path (the cwd is elsewhere) and checks CHECKED."""
    with open(os.path.join(step_dir, "manifest.json")) as f:
        manifest = json.load(f)
    with h5py.File(os.path.join(step_dir, "index.h5"), "r") as index:
        units = json.loads(text(index.attrs["units"]))
        for name in CHECKED:
            want = expected_shape(name, manifest["model"])
            for virtual, group in (("model", "master"), ("optimizer/exp_avg", "exp_avg"),
                                   ("optimizer/exp_avg_sq", "exp_avg_sq")):
                full = index[f"{virtual}/{name}"][()]
                assert full.shape == want, f"{label}: {virtual}/{name} has shape {full.shape}, expected {want}"
                assert full.dtype == np.float32, f"{label}: {virtual}/{name} is {full.dtype}"
                parts, hits, n = assemble(h5py, np, step_dir, units, name, group)
                assert (hits == 1).all(), f"{label}: the units of {name} do not tile it exactly"
                # A missing source reads as the fill value 0: require real data before comparing.
                assert np.count_nonzero(parts) > 0, f"{label}: {group} units of {name} are all zero"
                # Bitwise (as uint32): the virtual dataset maps the unit datasets unchanged.
                if not np.array_equal(full.view(np.uint32), parts.view(np.uint32)):
                    bad = np.argwhere(full.view(np.uint32) != parts.view(np.uint32))
                    raise AssertionError(f"{label}: {virtual}/{name} differs from its {n} units at "
                                         f"{len(bad)} elements, first {tuple(bad[0])}")
                print(f"ok  {label}: {virtual}/{name} {full.shape} == {n} unit(s) of {group}")


def run_verify(ortho_ckpt, path):
    r = subprocess.run([ortho_ckpt, "verify", path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return r.returncode, r.stdout


def tampered_copy(h5py, np, step_dir, dest, mutate):
    """A copy of step_dir whose index.h5 "units" attribute is mutate(units), with manifest.json's size
    and CRC-32 of index.h5 updated so the files still pass the checksum check."""
    shutil.copytree(step_dir, dest)
    index_path = os.path.join(dest, "index.h5")
    with h5py.File(index_path, "r+") as index:
        units = json.loads(text(index.attrs["units"]))
        index.attrs["units"] = np.bytes_(json.dumps(mutate(units)))
    with open(index_path, "rb") as f:
        data = f.read()
    manifest_path = os.path.join(dest, "manifest.json")
    with open(manifest_path) as f:
        manifest = json.load(f)
    for entry in manifest["files"]:
        if entry["name"] == "index.h5":
            entry["bytes"] = len(data)
            entry["crc32"] = f"{zlib.crc32(data) & 0xffffffff:08x}"
    with open(manifest_path, "w") as f:
        json.dump(manifest, f, indent=2)
    return dest


def check_verify(h5py, np, ortho_ckpt, step_dir, scratch):
    rc, out = run_verify(ortho_ckpt, step_dir)
    assert rc == 0, f"ortho_ckpt verify rejects a good checkpoint (exit {rc}):\n{out}"
    assert "exactly covered" in out, f"ortho_ckpt verify did not check the index:\n{out}"
    print("ok  ortho_ckpt verify accepts the checkpoint")
    name = CHECKED[0]

    def drop(units):
        i = next(i for i, u in enumerate(units) if u["logical"] == name)
        return units[:i] + units[i + 1:]

    def repeat(units):
        return units + [next(u for u in units if u["logical"] == name)]

    for label, mutate, says in (("gap", drop, "cover"), ("overlap", repeat, "overlap")):
        bad = tampered_copy(h5py, np, step_dir, os.path.join(scratch, f"tampered_{label}"), mutate)
        rc, out = run_verify(ortho_ckpt, bad)
        assert rc == 1, f"ortho_ckpt verify exit {rc} on a {label} in the units of {name}:\n{out}"
        assert name in out and says in out, f"ortho_ckpt verify does not name the {label} in {name}:\n{out}"
        print(f"ok  ortho_ckpt verify rejects the {label} in the units of {name}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ortho-megatron", required=True)
    p.add_argument("--ortho-ckpt", required=True)
    p.add_argument("--data", required=True, help="dataset prefix (the checkpoints_fixture_dataset test writes it)")
    p.add_argument("--work", required=True, help="scratch directory (recreated)")
    a = p.parse_args()
    try:
        import h5py
        import numpy as np
    except ImportError as e:
        print(f"SKIP: {sys.executable} has no h5py/numpy ({e})")
        return SKIP

    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    run = os.path.join(a.work, "run")
    cmd = [a.ortho_megatron, "--model", "tiny", "--seq-length", "32", "--micro-batch-size", "2",
           "--global-batch-size", "2", "--train-iters", "2", "--optimizer", "orthoadam", "--ortho-block", "64",
           "--data-path", a.data, "--save", run]
    r = subprocess.run(cmd, cwd=a.work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        print(r.stdout)
        print(f"FAIL: {' '.join(cmd)} exited {r.returncode}")
        return 1
    with open(os.path.join(run, "latest")) as f:
        step_dir = os.path.abspath(os.path.join(run, f.read().strip()))

    elsewhere = tempfile.mkdtemp(prefix="om_h5py_elsewhere_")
    try:
        os.chdir(elsewhere)  # nothing of the run is reachable relative to the cwd
        check_step_dir(h5py, np, step_dir, "in place")

        moved = os.path.join(elsewhere, "moved_step")
        shutil.copytree(step_dir, moved)
        check_step_dir(h5py, np, moved, "copied")

        alone = os.path.join(elsewhere, "index_alone")
        os.makedirs(alone)
        shutil.copy(os.path.join(step_dir, "index.h5"), alone)
        name = CHECKED[0]
        with h5py.File(os.path.join(step_dir, "index.h5"), "r") as index:
            expected = index[f"model/{name}"][()]
        try:
            with h5py.File(os.path.join(alone, "index.h5"), "r") as index:
                orphan = index[f"model/{name}"][()]
            reproduced = np.array_equal(orphan.view(np.uint32), expected.view(np.uint32))
        except (OSError, KeyError) as e:
            print(f"ok  control: index.h5 without shards fails to read: {e}")
            reproduced = False
        else:
            print(f"ok  control: index.h5 without shards reads {np.count_nonzero(orphan)} non-zero elements")
        if reproduced:
            print("FAIL: index.h5 without its shards still reproduced the tensor; the comparison proves nothing")
            return 1

        check_verify(h5py, np, a.ortho_ckpt, step_dir, elsewhere)
    except AssertionError as e:
        print(f"FAIL: {e}")
        return 1
    finally:
        os.chdir(a.work)
        shutil.rmtree(elsewhere, ignore_errors=True)
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
