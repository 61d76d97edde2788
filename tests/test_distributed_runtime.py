"""Multi-process start-up resolution (flags, SLURM, Open MPI, Cloud TPU) and multi-slice meshes."""

import dataclasses

import numpy as np
import pytest

from inoc_jax.errors import ConfigError
from inoc_jax.runtime.distributed import ClusterSpec, detect_cluster, first_slurm_host
from inoc_jax.sharding.mesh import detected_slices, hybrid_device_array, slice_groups


def _detect(env=None, tpu=False, **flags):
  return detect_cluster(flags.get("coordinator"), flags.get("num"), flags.get("pid"), env=env or {},
                        tpu_present=tpu)


def test_single_process_without_cluster_is_a_no_op():
  assert _detect() == ClusterSpec("single")
  assert not _detect().is_distributed
  assert _detect(coordinator=None, num=1, pid=0) == ClusterSpec("single")


def test_explicit_flags_win_over_the_environment():
  slurm = {"SLURM_JOB_ID": "7", "SLURM_PROCID": "1", "SLURM_NTASKS": "4", "SLURM_STEP_NODELIST": "n[1-4]"}
  spec = _detect(slurm, coordinator="10.0.0.2:8476", num=2, pid=1)
  assert spec == ClusterSpec("flags", "10.0.0.2:8476", 2, 1)


@pytest.mark.parametrize("flags,match", [
    (dict(coordinator="h:1", num=2), "--process_id is missing"),
    (dict(num=2, pid=0), "--coordinator_address is missing"),
    (dict(coordinator="h:1", num=2, pid=2), r"must be in \[0, 2\)"),
    (dict(coordinator="no-port", num=2, pid=0), "HOST:PORT"),
])
def test_bad_flags_are_one_sentence_errors(flags, match):
  with pytest.raises(ConfigError, match=match):
    _detect(**flags)


@pytest.mark.parametrize("nodelist,first", [
    ("node001", "node001"), ("node001,login2", "node001"), ("gpu[007-009,012],x1", "gpu007"),
    ("a[3,5]", "a3"), ("tpu-vm-[10-11]", "tpu-vm-10"),
])
def test_first_slurm_host(nodelist, first):
  assert first_slurm_host(nodelist) == first


def test_slurm_one_task_per_node_sees_all_gpus():
  env = {"SLURM_JOB_ID": "12345", "SLURM_PROCID": "3", "SLURM_NTASKS": "4", "SLURM_LOCALID": "0",
         "SLURM_STEP_NODELIST": "gpu[01-04]", "SLURM_STEP_TASKS_PER_NODE": "1(x4)"}
  spec = _detect(env)
  assert spec == ClusterSpec("slurm", "gpu01:52345", 4, 3, None)


def test_slurm_one_task_per_gpu_pins_the_local_gpu_and_port_override():
  env = {"SLURM_JOB_ID": "9", "SLURM_PROCID": "13", "SLURM_NTASKS": "16", "SLURM_LOCALID": "5",
         "SLURM_JOB_NODELIST": "h[1-2]", "SLURM_TASKS_PER_NODE": "8(x2)", "JAX_COORDINATOR_PORT": "6000"}
  spec = _detect(env)
  assert spec == ClusterSpec("slurm", "h1:6000", 16, 13, (5,))


def test_slurm_single_task_is_single_process():
  assert _detect({"SLURM_JOB_ID": "9", "SLURM_PROCID": "0", "SLURM_NTASKS": "1"}) == ClusterSpec("single")


def test_open_mpi_reads_rank_size_and_launcher_host():
  env = {"OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_LOCAL_SIZE": "1",
         "OMPI_COMM_WORLD_LOCAL_RANK": "0", "OMPI_MCA_orte_hnp_uri": "1531576320.0;tcp://10.96.0.1,10.148.0.1:34911"}
  spec = _detect(env)
  assert spec.source == "openmpi" and spec.num_processes == 2 and spec.process_id == 1
  assert spec.coordinator_address.startswith("10.96.0.1:") and spec.local_device_ids is None
  env["JAX_COORDINATOR_ADDRESS"] = "head:1234"
  assert _detect(env).coordinator_address == "head:1234"


def test_open_mpi_5_without_launcher_uri_asks_for_the_coordinator():
  with pytest.raises(ConfigError, match="JAX_COORDINATOR_ADDRESS"):
    _detect({"OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "0"})


def test_cloud_tpu_uses_jax_auto_detection_unless_disabled():
  assert _detect(tpu=True) == ClusterSpec("cloud_tpu")
  assert _detect({"INOC_SINGLE_PROCESS": "1"}, tpu=True) == ClusterSpec("single")


@dataclasses.dataclass(frozen=True)
class FakeDevice:
  id: int
  process_index: int
  platform: str = "cpu"
  slice_index: int | None = None


def test_devices_group_by_tpu_slice():
  devices = [FakeDevice(i, i // 4, "cpu", slice_index=i // 8) for i in range(16)]
  assert detected_slices(devices) == 2
  groups = slice_groups(devices, 2)
  assert [{d.slice_index for d in g} for g in groups] == [{0}, {1}]
  with pytest.raises(ConfigError, match="span 2 TPU slices"):
    slice_groups(devices, 4)


def test_devices_without_slices_group_by_whole_processes():
  devices = [FakeDevice(i, i // 2) for i in reversed(range(8))]  # 4 processes x 2 devices
  assert detected_slices(devices) == 1
  groups = slice_groups(devices, 2)
  assert [sorted({d.process_index for d in g}) for g in groups] == [[0, 1], [2, 3]]
  with pytest.raises(ConfigError, match="split process"):
    slice_groups([FakeDevice(i, i // 4) for i in range(8)], 4)  # 2 processes, 4 slices


def test_hybrid_array_puts_data_across_slices_and_fsdp_tensor_within():
  devices = [FakeDevice(i, i // 4) for i in range(16)]  # 4 nodes x 4 devices
  array = hybrid_device_array((4, 2, 2), devices, num_slices=4)
  assert array.shape == (4, 2, 2)
  for data_index in range(4):  # every fsdp x tensor block lives on one node
    assert len({d.process_index for d in array[data_index].ravel()}) == 1
  assert {d.process_index for d in array[:, 0, 0]} == {0, 1, 2, 3}
  with pytest.raises(ConfigError, match="multiple of the 4 slices"):
    hybrid_device_array((2, 4, 2), devices, num_slices=4)


def test_make_mesh_with_slices_on_fake_cpu_devices(python_subprocess):
  result = python_subprocess("""
      import json, jax
      from inoc_jax.sharding.mesh import make_mesh
      mesh = make_mesh({"data": 4, "fsdp": 2, "tensor": 1}, num_slices=2)
      ids = [[d.id for d in row.ravel()] for row in mesh.devices]
      print(json.dumps({"ids": ids, "shape": dict(mesh.shape)}))
  """, devices=8)
  assert result["shape"] == {"data": 4, "fsdp": 2, "tensor": 1}
  assert np.array(result["ids"]).ravel().tolist() == list(range(8))
