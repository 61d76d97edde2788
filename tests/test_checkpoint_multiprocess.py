"""Two processes on 127.0.0.1 (gloo), parameters sharded across them: save and restore one checkpoint."""

import json
import os
import socket
import subprocess
import sys
import textwrap

from tests.conftest import REPO

WORKER = textwrap.dedent("""
    import json, sys
    import jax
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    process_id, port, directory = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=2, process_id=process_id)
    import optax
    from flax import nnx
    from inoc_jax.checkpoint import tree_codec
    from inoc_jax.checkpoint.iterator_state import gather_states, local_state
    from inoc_jax.checkpoint.manager import Checkpointer
    from inoc_jax.checkpoint.resume import item_targets, run_meta
    from inoc_jax.model.config import get_preset
    from inoc_jax.model.transformer import Transformer
    from inoc_jax.sharding.mesh import make_mesh
    from inoc_jax.model.build import ModelSpec
    from inoc_jax.training.train_state import abstract_train_state, init_train_state
    arch = get_preset("tiny")
    spec = ModelSpec(lambda rngs: Transformer(arch, rngs=rngs), nnx.Param)
    mesh = make_mesh({"data": 1, "fsdp": -1, "tensor": 1})
    tx = optax.adamw(1e-3)
    _, state, _ = init_train_state(spec, tx, mesh, 0)
    embedding = state.params["embedder"]["embedding"][...]
    sums = tree_codec.checksums(state.params)
    ckpt = Checkpointer(directory)
    ckpt.save(1, state, data_iterator=gather_states({"process": process_id, "pad": "x" * (7 * process_id)}),
              config={}, run_meta=run_meta(arch, None, ""))
    ckpt.close()
    _, abstract, shardings = abstract_train_state(spec, tx, mesh, 0)
    restored = Checkpointer(directory).restore_latest(*item_targets(abstract, shardings))
    print(json.dumps(dict(same=tree_codec.checksums(restored.params) == sums,
                          iterator=local_state(restored.data_iterator), global_devices=jax.device_count(),
                          local_shard=list(embedding.addressable_shards[0].data.shape))))
""")


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_two_processes_save_and_restore_their_shards_and_iterator_states(tmp_path):
  script = tmp_path / "worker.py"
  script.write_text(WORKER)
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=1",
             PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
  port = _free_port()
  procs = [subprocess.Popen([sys.executable, str(script), str(i), str(port), str(tmp_path / "checkpoints")],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for i in range(2)]
  try:
    outputs = [p.communicate(timeout=300) for p in procs]
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  for p, (out, err) in zip(procs, outputs):
    assert p.returncode == 0, err[-3000:]
  results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
  for i, result in enumerate(results):
    assert result == {"same": True, "iterator": {"process": i, "pad": "x" * (7 * i)}, "global_devices": 2,
                      "local_shard": [512, 32]}  # d_model 64 split over the two processes
