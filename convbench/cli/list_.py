"""``convbench list``: every registered backend, its algorithm, options and capabilities."""

from __future__ import annotations

import json as _json

from .common import EXIT_OK

NAME = "list"
HELP = "backends, their algorithm and capabilities"


def setup(p) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")


def describe_all() -> list[dict]:
    """One dict per registered backend: its ``describe()``, or why it is not available."""
    from ..backends import get_backend, registered_backends, unavailable_reason
    rows = []
    for name in registered_backends():
        reason = unavailable_reason(name)
        if reason is None:
            d = get_backend(name).describe()
            d["available"] = True
        else:
            d = {"name": name, "available": False, "reason": reason}
        rows.append(d)
    return rows


def run(*, json: bool = False) -> int:  # noqa: A002 - the flag's name
    rows = describe_all()
    if json:
        print(_json.dumps(rows, indent=2, default=str))
        return EXIT_OK
    for d in rows:
        if not d["available"]:
            print(f"{d['name']:<16} not available: {d['reason']}")
            continue
        caps = ["ranks " + "/".join(f"{r}-D" for r in d.get("ranks", (2,))),
                "dtypes " + "/".join(x.replace("float", "f") for x in d["dtypes"])]
        if d["kernel_sizes"]:
            caps.append("kernels " + ",".join(f"{k} (every axis)" for k in d["kernel_sizes"]))
        if d["max_kernel"]:
            caps.append(f"kernel <= {d['max_kernel']}")
        caps.append("strides " + (",".join(map(str, d["strides"])) if d["strides"] else "any"))
        caps.append("dilation" if d["dilation"] else "no dilation")
        caps.append("groups" if d["groups"] else "no groups")
        if d["transposed"]:
            caps.append("transposed")
        caps.append("exact" if d["exact"] else f"tol {d['rtol']['float32']:g} (f32)")
        if d["memory_limit_bytes"]:
            caps.append(f"workspace <= {d['memory_limit_bytes'] / 2**30:.1f} GiB")
        if d["max_calls"]:
            caps.append(f"<= {d['max_calls']} library calls (images x channel pairs)")
        caps.append(f"threads: {d['threads']}")
        if not d["nonfinite"]:
            caps.append("NaN/inf inputs: not PyTorch's result")
        if d["options"]:
            caps.append("options " + ", ".join(f"{k}={v}" for k, v in d["options"].items()))
        kind = d["role"]
        print(f"{d['name']:<16} {d['algorithm']:<26} [{kind}] {d['description']}")
        print(f"{'':<16} {'; '.join(caps)}")
    return EXIT_OK

