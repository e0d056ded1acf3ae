"""Running a `Jukebox` over a device mesh: several GPUs, a TPU slice, several hosts.

    mesh = make_mesh("data=2,model=4")            # 8 devices: 2 batch groups x 4-way tensor parallel
    jb = Jukebox.load(path, mesh=mesh)            # restored straight into its shards
    jb = Jukebox.init(config, key).shard(mesh)    # or placed from memory
    jb.sample(2, key, labels, n_tokens)           # the same API; runs under the mesh

The mesh has two axes: `data` splits the batch (samples), `model` splits each prior's
attention and MLP (tensor parallel). `make_mesh()` puts every device on `model`: one sample of
the 5b priors then needs the least memory per device.

One rules table, `RULES`, maps the logical axis names every weight, activation and KV cache
carries (the glossary in `layers.py`) onto the mesh axes: `batch` over `data`; `heads`, else
the head width `kv`, and the MLP width `mlp` over `model`; everything else replicated. Pass
`rules=` (same form) to `Jukebox.shard` / `Jukebox.load` to override it. Per part
(`part_rules`), a rule is dropped where the part's transformer cannot divide that axis by the
mesh axis: the 5b priors (8 heads) split heads on `model` of 2, 4 or 8; 1b_lyrics (2 heads)
splits heads on 2 and the head width beyond, the upsamplers (1 head) the head width. Per array
(`partition_specs`), an axis the mesh axis does not divide is left to the next rule, else
replicated (the 5b_lyrics lyric encoder's 4 heads on `model=8`: its head width is split).

Sharding never appears in the model's math: the methods enter the mesh and the part's rules
(`use`), and the model names its activations and caches (`nn.with_logical_constraint`);
XLA's SPMD partitioner inserts the communication. The active rules key JAX's jit caches
(`jax.make_user_context`), so a trace made under one table is never reused under another.

Several hosts: start the same program on every host, call `jax.distributed.initialize()`
first (`jukebox-jax sample --distributed`), then `make_mesh` spans every host's devices;
each process holds and reads only its own shards. See the README ("Several devices and hosts").
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterator, Mapping
from numbers import Integral
from typing import Any

import flax.linen as nn
import jax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from jukebox_jax import prior
from jukebox_jax.config import JukeboxConfig, PriorConfig, VQVAEConfig
from jukebox_jax.errors import InputError, shown
from jukebox_jax.layers import AXES as LOGICAL_AXES
from jukebox_jax.layers import is_param
from jukebox_jax.params import Params, boxed_shapes
from jukebox_jax.prior.attention import cache_axes

MESH_AXES = ("data", "model")
MeshAxes = str | tuple[str, ...] | None  # what one logical axis maps onto
Rules = tuple[tuple[str, MeshAxes], ...]  # (logical axis, mesh axes), first match wins
Part = PriorConfig | VQVAEConfig

RULES: Rules = (
    ("batch", "data"),
    ("heads", "model"),  # where a part has a multiple of `model` heads ...
    ("kv", "model"),  # ... else the head width
    ("mlp", "model"),
    *((name, None) for name in sorted(LOGICAL_AXES - {"batch", "heads", "kv", "mlp"})),
)


# -- Meshes -------------------------------------------------------------------------------


def mesh_shape(spec: str | Mapping[str, int] | None, n_devices: int) -> dict[str, int]:
    """`{"data": d, "model": m}` with `d * m == n_devices` from "data=2,model=4", a mapping, or
    None (every device on `model`); an axis left out takes the devices the other leaves."""
    if spec is None:
        return {"data": 1, "model": n_devices}
    if isinstance(spec, str):
        sizes = {}
        for item in spec.split(","):
            m = re.fullmatch(r"\s*(\w+)\s*=\s*(\d+)\s*", item)
            if m is None:
                raise InputError(f"mesh {shown(spec)}: {shown(item.strip())} is not AXIS=SIZE; write e.g. 'data=2,model=4'")
            if m.group(1) in sizes:
                raise InputError(f"mesh {spec!r} names {m.group(1)} twice")
            sizes[m.group(1)] = int(m.group(2))
    elif isinstance(spec, Mapping):
        sizes = {k: int(n) if isinstance(n, Integral) and not isinstance(n, bool) else n for k, n in spec.items()}
    else:
        raise InputError(f"mesh must be a string like 'data=2,model=4', a mapping or None, got {type(spec).__name__}")
    if unknown := sorted(set(sizes) - set(MESH_AXES)):
        raise InputError(f"mesh {spec!r}: unknown axes {unknown}; the axes are {', '.join(MESH_AXES)}")
    if not sizes or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in sizes.values()):
        raise InputError(f"mesh {spec!r}: give data and/or model sizes, whole numbers >= 1")
    given = math.prod(sizes.values())
    if len(sizes) == 1:
        (name,) = sizes
        other = "model" if name == "data" else "data"
        if n_devices % given:
            raise InputError(f"mesh {spec!r}: {name}={given} does not divide the {n_devices} devices")
        sizes[other] = n_devices // given
    elif given != n_devices:
        raise InputError(f"mesh {spec!r} holds {given} devices, but there are {n_devices}; make data * model = {n_devices}")
    return {axis: sizes[axis] for axis in MESH_AXES}


def make_mesh(spec: str | Mapping[str, int] | None = None) -> Mesh:
    """A `data` x `model` mesh over every device of every process (`mesh_shape` reads
    `spec`), laid out by `jax.make_mesh` for the hardware's topology."""
    shape = mesh_shape(spec, jax.device_count())
    return jax.make_mesh(tuple(shape.values()), MESH_AXES, axis_types=(AxisType.Auto,) * len(MESH_AXES))


def check_mesh(mesh: object, rules: Any = None) -> Rules | None:
    """Refuses (`InputError`) what `Jukebox.shard` and `load(mesh=)` cannot run on: anything
    but a `Mesh`, a mesh with Explicit or Manual axes (the model's sharding constraints are
    hints, which such axes turn into asserts: `jax.make_mesh` makes them unless told), and
    without `rules` one lacking `RULES`' axes. Returns `rules` checked (`check_rules`)."""
    if not isinstance(mesh, Mesh):
        raise InputError(f"mesh must be a jax.sharding.Mesh (sharding.make_mesh), got {type(mesh).__name__}")
    if odd := {name: t.name for name, t in zip(mesh.axis_names, mesh.axis_types) if t != AxisType.Auto}:
        raise InputError(
            f"mesh axes {odd} are not AxisType.Auto (jax.make_mesh's default): make the mesh with sharding.make_mesh, "
            "or jax.make_mesh(..., axis_types=(AxisType.Auto,) * n)"
        )
    if rules is None and not set(MESH_AXES) <= set(mesh.axis_names):
        raise InputError(
            f"mesh axes ({', '.join(mesh.axis_names)}): sharding.RULES split the model over axes named "
            f"{' and '.join(MESH_AXES)}; name the mesh's axes so (sharding.make_mesh), or give rules= for its own"
        )
    return None if rules is None else check_rules(rules, shape_of(mesh))


def shape_of(mesh: Mesh) -> dict[str, int]:
    return dict(mesh.shape)


# -- Rules --------------------------------------------------------------------------------


def check_rules(rules: Any, mesh_axes: Mapping[str, int]) -> Rules:
    """`rules` as a tuple of (logical axis, mesh axes) pairs, each name checked."""
    try:
        pairs = tuple((name, axes if axes is None or isinstance(axes, str) else tuple(axes)) for name, axes in rules)
    except (TypeError, ValueError):
        raise InputError(f"rules must be (logical axis, mesh axis or None) pairs like sharding.RULES, got {rules!r}") from None
    for name, axes in pairs:
        if name not in LOGICAL_AXES:
            raise InputError(f"rules: unknown logical axis {name!r}; the names are {', '.join(sorted(LOGICAL_AXES))}")
        for axis in () if axes is None else (axes,) if isinstance(axes, str) else axes:
            if axis not in mesh_axes:
                raise InputError(f"rules: {name!r} -> {axis!r}, not an axis of the mesh ({', '.join(mesh_axes)})")
    return pairs


def _size(axes: MeshAxes, mesh_axes: Mapping[str, int]) -> int:
    return math.prod(mesh_axes[a] for a in ((axes,) if isinstance(axes, str) else axes or ()))


def _stack_sizes(part: Part) -> dict[str, int]:
    """The sizes of the logical axes a part's caches and activations are split on."""
    if isinstance(part, VQVAEConfig):
        return {}
    t = part.transformer
    return {"heads": t.heads, "kv": t.attn_width // t.heads, "mlp": t.mlp_width}


def part_rules(part: Part, mesh_axes: Mapping[str, int], rules: Rules | None = None) -> Rules:
    """The rules as they apply to one part on a mesh of `mesh_axes` sizes (`{"data": 1,
    "model": 4}`: no devices needed): the table without the rules whose axis the part's
    transformer cannot divide by the mesh axes' size (so `kv` takes `model` where `heads`
    cannot). What the methods run under, and what `partition_specs` resolves."""
    rules = check_rules(RULES if rules is None else rules, mesh_axes)
    sizes = _stack_sizes(part)
    return tuple(
        (name, axes) for name, axes in rules if axes is None or name not in sizes or sizes[name] % _size(axes, mesh_axes) == 0
    )


def spec(names: tuple[str | None, ...], shape: tuple[int, ...], rules: Rules, mesh_axes: Mapping[str, int]) -> PartitionSpec:
    """The `PartitionSpec` of one array with logical axis `names`: the rules in order, each
    assigning its mesh axes to its logical axis if that axis is still unassigned, the mesh
    axes are still free in this array, and they divide the axis (else it stays replicated).
    Mesh axes of size 1 are not named."""
    out: list[MeshAxes] = [None] * len(names)
    assigned, used = set(), set()
    for name, axes in rules:
        if name not in names or names.index(name) in assigned:
            continue
        i = names.index(name)
        group = set() if axes is None else {axes} if isinstance(axes, str) else set(axes)
        if group & used or shape[i] % _size(axes, mesh_axes):
            continue
        if _size(axes, mesh_axes) == 1:  # splits nothing: left out, as JAX leaves it out
            axes, group = None, set()
        out[i], used = axes, used | group
        assigned.add(i)
    return PartitionSpec(*out)


def _boxed(part: Part) -> Params:
    if isinstance(part, VQVAEConfig):
        return boxed_shapes(JukeboxConfig(vqvae=part))["vqvae"]
    return boxed_shapes(JukeboxConfig(priors=(part,)))[f"prior_level_{part.level}"]


def partition_specs(part: Part, mesh_axes: Mapping[str, int], rules: Rules | None = None) -> Params:
    """A `PartitionSpec` per param of one part (the tree of its params), for a mesh of
    `mesh_axes` sizes: pure, no devices needed (with `jax.eval_shape`, per-device bytes).
    Each array resolves the whole table (`spec`), so the 5b_lyrics lyric encoder splits its
    head width where only its prior's heads divide."""
    rules = check_rules(RULES if rules is None else rules, mesh_axes)
    return jax.tree.map(lambda b: spec(tuple(b.names), tuple(b.value.shape), rules, mesh_axes), _boxed(part), is_leaf=is_param)


def cache_specs(part: PriorConfig, mesh_axes: Mapping[str, int], batch: int, rules: Rules | None = None) -> dict:
    """A `PartitionSpec` per KV-cache array of a prior sampling `batch` samples: axes
    `batch, heads, <positions>, kv` (`prior.attention.cache_axes`)."""
    rules = part_rules(part, mesh_axes, rules)
    shapes = jax.eval_shape(lambda: prior.init_cache(part, batch))
    return jax.tree.map(lambda x: spec(cache_axes(x.ndim), x.shape, rules, mesh_axes), shapes)


def shardings(config: JukeboxConfig, mesh: Mesh, rules: Rules | None = None) -> Params:
    """A `NamedSharding` per param of every part of `config` (the tree of `params.param_axes`)."""
    parts = ([("vqvae", config.vqvae)] if config.vqvae else []) + [(f"prior_level_{p.level}", p) for p in config.priors]
    return {
        key: jax.tree.map(lambda s: NamedSharding(mesh, s), partition_specs(part, shape_of(mesh), rules))
        for key, part in parts
    }


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


# -- Running under a mesh -----------------------------------------------------------------

_ACTIVE_RULES = jax.make_user_context(None)  # part of every jit cache key: no trace reused across rules


@contextlib.contextmanager
def use(mesh: Mesh, rules: Rules) -> Iterator[None]:
    """Runs what is inside under `mesh` with the logical axis `rules` (`part_rules`): the
    model's named activations and caches come out sharded by them."""
    with jax.set_mesh(mesh), nn.logical_axis_rules(rules), _ACTIVE_RULES(rules):
        yield
