"""Multi-process start-up: find the cluster, call `jax.distributed.initialize`, log the topology.

Every CLI calls `initialize()` before touching a device (see `inoc_jax.cli.friendly`).
Where the process count, id and coordinator come from, first match wins:

  1. explicit `--coordinator_address --num_processes --process_id` flags (all three);
  2. SLURM (`srun`): SLURM_NTASKS > 1, SLURM_PROCID, coordinator = first host of
     SLURM_STEP_NODELIST (or SLURM_JOB_NODELIST) on a port derived from SLURM_JOB_ID;
  3. Open MPI (`mpirun`): OMPI_COMM_WORLD_SIZE > 1, OMPI_COMM_WORLD_RANK, coordinator
     from JAX_COORDINATOR_ADDRESS or the launcher in OMPI_MCA_orte_hnp_uri;
  4. a Cloud TPU VM (TPU chips on the PCI bus): plain `jax.distributed.initialize()`,
     which reads the worker list from the TPU metadata server;
  5. otherwise one process: nothing to initialise.

JAX_COORDINATOR_ADDRESS / JAX_COORDINATOR_PORT override the coordinator on clusters.
After start-up only process 0 keeps INFO logging for `inoc_jax` (the others warn and
error only), matching the writers, which write on process 0 alone.
"""

from __future__ import annotations

import dataclasses
import glob
import logging
import os
import re
import socket
from typing import Mapping

from inoc_jax.errors import ConfigError

log = logging.getLogger("inoc_jax")

# SLURM/Open MPI coordinator ports are derived from the job id inside this range, so two jobs
# sharing a first node rarely collide; JAX_COORDINATOR_PORT overrides.
_PORT_BASE, _PORT_SPAN = 50000, 10000


@dataclasses.dataclass(frozen=True)
class ClusterSpec:
  """How this process joins the job.

  Attributes:
    source: 'flags' | 'slurm' | 'openmpi' | 'cloud_tpu' | 'single'.
    coordinator_address: 'host:port' of process 0's coordinator (None: JAX finds it, or single).
    num_processes / process_id: job size and this process's rank (None: JAX finds them).
    local_device_ids: restrict this process to these local accelerators (one process per GPU).
  """

  source: str
  coordinator_address: str | None = None
  num_processes: int | None = None
  process_id: int | None = None
  local_device_ids: tuple[int, ...] | None = None

  @property
  def is_distributed(self) -> bool:
    return self.source != "single"


def first_slurm_host(nodelist: str) -> str:
  """First host name of a SLURM node list.

  >>> first_slurm_host('gpu[007-009,012],login1')
  'gpu007'
  """
  match = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist.strip())
  if not match or not match.group(1):
    raise ConfigError(f"Cannot read the SLURM node list {nodelist!r}; pass --coordinator_address=HOST:PORT.")
  prefix, ranges = match.group(1), match.group(2)
  if ranges is None:
    return prefix
  return prefix + re.split(r"[-,]", ranges)[0]


def _port_from_job(job_id: str, env: Mapping[str, str]) -> int:
  if env.get("JAX_COORDINATOR_PORT"):
    return int(env["JAX_COORDINATOR_PORT"])
  digits = re.sub(r"\D", "", job_id) or "0"
  return _PORT_BASE + int(digits) % _PORT_SPAN


def _tasks_per_node(env: Mapping[str, str]) -> int:
  """SLURM tasks on this node ('4', '4(x2)' or '4,2' all start with this node's count)."""
  for name in ("SLURM_STEP_TASKS_PER_NODE", "SLURM_TASKS_PER_NODE", "SLURM_NTASKS_PER_NODE"):
    if env.get(name):
      return int(re.match(r"\d+", env[name]).group(0))
  return 1


def _slurm(env: Mapping[str, str]) -> ClusterSpec | None:
  ntasks = env.get("SLURM_STEP_NUM_TASKS") or env.get("SLURM_NTASKS")
  if not (env.get("SLURM_JOB_ID") and env.get("SLURM_PROCID") and ntasks) or int(ntasks) <= 1:
    return None
  coordinator = env.get("JAX_COORDINATOR_ADDRESS")
  if not coordinator:
    nodelist = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
    if not nodelist:
      raise ConfigError("SLURM gives no node list (SLURM_STEP_NODELIST); pass --coordinator_address=HOST:PORT.")
    coordinator = f"{first_slurm_host(nodelist)}:{_port_from_job(env['SLURM_JOB_ID'], env)}"
  local = None
  if _tasks_per_node(env) > 1 and env.get("SLURM_LOCALID") is not None:
    local = (int(env["SLURM_LOCALID"]),)  # one task per GPU: each task owns its GPU
  return ClusterSpec("slurm", coordinator, int(ntasks), int(env["SLURM_PROCID"]), local)


def _openmpi(env: Mapping[str, str]) -> ClusterSpec | None:
  size = env.get("OMPI_COMM_WORLD_SIZE")
  if not size or int(size) <= 1:
    return None
  coordinator = env.get("JAX_COORDINATOR_ADDRESS")
  if not coordinator:
    uri = env.get("OMPI_MCA_orte_hnp_uri", "")  # e.g. '1531576320.0;tcp://10.96.0.1,10.148.0.1:34911'
    host = re.search(r"tcp://([^,:;]+)", uri)
    if not host:
      raise ConfigError("Open MPI does not say where rank 0 runs (no OMPI_MCA_orte_hnp_uri, as with Open MPI 5); "
                        "set JAX_COORDINATOR_ADDRESS=HOST:PORT or pass --coordinator_address.")
    coordinator = f"{host.group(1)}:{_port_from_job(uri.split('.')[0], env)}"
  local = None
  if int(env.get("OMPI_COMM_WORLD_LOCAL_SIZE", "1")) > 1 and env.get("OMPI_COMM_WORLD_LOCAL_RANK") is not None:
    local = (int(env["OMPI_COMM_WORLD_LOCAL_RANK"]),)
  return ClusterSpec("openmpi", coordinator, int(size), int(env["OMPI_COMM_WORLD_RANK"]), local)


def tpu_chips_present() -> bool:
  """True on a Cloud TPU VM: Google TPU chips on the PCI bus or /dev/accel* / vfio devices."""
  try:
    from jax._src import hardware_utils  # pylint: disable=g-import-not-at-top
    if hardware_utils.num_available_tpu_chips_and_device_id()[0] > 0:
      return True
  except Exception:  # private API; fall back to device files
    pass
  return bool(glob.glob("/dev/accel*")) or bool(glob.glob("/dev/vfio/[0-9]*"))


def _explicit(coordinator_address, num_processes, process_id) -> ClusterSpec | None:
  given = {"--coordinator_address": coordinator_address, "--num_processes": num_processes,
           "--process_id": process_id}
  if all(value is None for value in given.values()):
    return None
  if num_processes is not None and num_processes == 1 and not coordinator_address:
    return ClusterSpec("single")
  missing = [name for name, value in given.items() if value is None]
  if missing:
    raise ConfigError(f"Multi-process flags need all of --coordinator_address, --num_processes and --process_id; "
                      f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing.")
  if num_processes < 1 or not 0 <= process_id < num_processes:
    raise ConfigError(f"--process_id={process_id} must be in [0, {num_processes}) for --num_processes={num_processes}.")
  if not re.fullmatch(r"\[?[\w.:-]+\]?:\d+", coordinator_address):
    raise ConfigError(f"--coordinator_address={coordinator_address!r} must be HOST:PORT, e.g. 10.0.0.2:8476.")
  if num_processes == 1:
    return ClusterSpec("single")
  return ClusterSpec("flags", coordinator_address, num_processes, process_id)


def detect_cluster(coordinator_address: str | None = None, num_processes: int | None = None,
                   process_id: int | None = None, *, env: Mapping[str, str] | None = None,
                   tpu_present: bool | None = None) -> ClusterSpec:
  """Resolves how this process joins the job (pure apart from the TPU probe; see module doc)."""
  env = os.environ if env is None else env
  spec = _explicit(coordinator_address, num_processes, process_id) or _slurm(env) or _openmpi(env)
  if spec is not None:
    return spec
  if env.get("INOC_SINGLE_PROCESS") == "1":
    return ClusterSpec("single")
  on_tpu_vm = tpu_chips_present() if tpu_present is None else tpu_present
  return ClusterSpec("cloud_tpu") if on_tpu_vm else ClusterSpec("single")


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, *, initialization_timeout: int = 300) -> ClusterSpec:
  """Joins the multi-process job if there is one; a no-op for a single process. Idempotent.

  Must run before anything touches a JAX device. Logs the topology once.
  """
  import jax  # pylint: disable=g-import-not-at-top

  spec = detect_cluster(coordinator_address, num_processes, process_id)
  if not spec.is_distributed or jax.distributed.is_initialized():
    return spec
  from jax._src import xla_bridge  # pylint: disable=g-import-not-at-top
  if xla_bridge.backends_are_initialized():
    raise ConfigError("JAX devices were used before the multi-process start-up; call "
                      "inoc_jax.runtime.distributed.initialize() first thing in main().")
  if spec.source == "cloud_tpu":
    jax.distributed.initialize(initialization_timeout=initialization_timeout)
  else:
    jax.distributed.initialize(spec.coordinator_address, spec.num_processes, spec.process_id,
                               local_device_ids=list(spec.local_device_ids) if spec.local_device_ids else None,
                               cluster_detection_method="deactivate",
                               initialization_timeout=initialization_timeout)
  if jax.process_index() != 0:
    log.setLevel(logging.WARNING)
  log_topology(spec.source)
  return spec


@dataclasses.dataclass(frozen=True)
class Topology:
  """What this job runs on, for logs and run metadata."""

  process_index: int
  process_count: int
  local_devices: int
  global_devices: int
  platform: str
  device_kind: str
  num_slices: int
  hostname: str

  def line(self) -> str:
    slices = f", {self.num_slices} slices" if self.num_slices > 1 else ""
    return (f"process {self.process_index}/{self.process_count} on {self.hostname}: {self.local_devices} local of "
            f"{self.global_devices} {self.platform} devices ({self.device_kind}){slices}")


def topology() -> Topology:
  import jax  # pylint: disable=g-import-not-at-top
  from inoc_jax.sharding.mesh import detected_slices  # pylint: disable=g-import-not-at-top
  devices = jax.devices()
  return Topology(process_index=jax.process_index(), process_count=jax.process_count(),
                  local_devices=jax.local_device_count(), global_devices=len(devices),
                  platform=devices[0].platform, device_kind=devices[0].device_kind,
                  num_slices=detected_slices(devices), hostname=socket.gethostname())


def log_topology(source: str) -> None:
  """Every process logs its own line (one per worker log; process 0's also names the job)."""
  topology_log = logging.getLogger("inoc_jax.topology")
  topology_log.setLevel(logging.INFO)  # also on processes whose `inoc_jax` logging is quietened
  topology_log.info("distributed start-up via %s: %s", source, topology().line())
