"""Command line of the simulator: ``python -m airflow_esml.testing.simulator`` (or ``-m airflow_esml.testing``).

Prints ``listening on URL`` as its first line, then serves until SIGINT or SIGTERM and exits 0.
Both commands run :func:`main`. :data:`EXAMPLES_COMMAND` starts a simulator on which every example DAG runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any

from airflow_esml.testing.cluster.endpoints import BUILTIN_MODELS
from airflow_esml.testing.simulator import Simulator

#: one simulator for every example DAG: ``my-e5`` (batch inference, business hours) and the A/B test's
#: ``my-e5-a`` and ``my-e5-b``, on two ML nodes large enough for the examples' default allocations
EXAMPLES_ARGS = (
    "--port", "9200", "--ml-node", "ml-node-1:8", "--ml-node", "ml-node-2:8",
    "--deploy", "my-e5:1", "--deploy", "my-e5-a=my-e5:1", "--deploy", "my-e5-b=my-e5:1",
)  # fmt: skip
EXAMPLES_COMMAND = "python -m airflow_esml.testing.simulator " + " ".join(EXAMPLES_ARGS)


def _node(text: str) -> tuple[str, int]:
    name, sep, processors = text.rpartition(":")
    if not sep or not name or not processors.isdigit() or int(processors) < 1:
        raise argparse.ArgumentTypeError(f"expected NAME:PROCESSORS (e.g. ml-node-1:4), got {text!r}")
    return name, int(processors)


DEPLOY_FORM = "[DEPLOYMENT_ID=]MODEL_ID[:ALLOCATIONS]"


def _deploy(text: str) -> tuple[str | None, str, int]:
    """``[DEPLOYMENT_ID=]MODEL_ID[:ALLOCATIONS]`` as (deployment id or None, model id, allocations)."""
    deployment, named, rest = text.partition("=")
    if not named:
        deployment, rest = "", text
    model, sep, allocations = rest.rpartition(":")
    if not sep:
        model, allocations = rest, "1"
    if (named and not deployment) or not model or not allocations.isdigit() or int(allocations) < 1:
        raise argparse.ArgumentTypeError(f"expected {DEPLOY_FORM} (e.g. my-e5:2 or my-e5-a=my-e5:1), got {text!r}")
    return deployment or None, model, int(allocations)


ENDPOINT_FORM = "[TASK_TYPE/]INFERENCE_ID=MODEL_ID[:ALLOCATIONS]"


def _endpoint(text: str) -> dict[str, object]:
    """``[TASK_TYPE/]INFERENCE_ID=MODEL_ID[:ALLOCATIONS]`` as keyword arguments of ``Simulator.create_endpoint``."""
    head, sep, rest = text.partition("=")
    task_type, slash, inference_id = head.rpartition("/")
    model, colon, allocations = rest.rpartition(":")
    if not colon:
        model, allocations = rest, "1"
    valid_task = not slash or task_type in ("sparse_embedding", "text_embedding", "rerank")
    if not sep or not inference_id or not model or not allocations.isdigit() or int(allocations) < 1 or not valid_task:
        raise argparse.ArgumentTypeError(
            f"expected {ENDPOINT_FORM} with TASK_TYPE sparse_embedding, text_embedding or rerank "
            f"(e.g. my-ep=my-e5:2 or sparse_embedding/my-elser=.elser_model_2), got {text!r}"
        )
    return {
        "inference_id": inference_id,
        "model_id": model,
        "task_type": task_type or BUILTIN_MODELS.get(model, "text_embedding"),
        "num_allocations": int(allocations),
    }


def _role(text: str) -> list[str] | dict[str, Any]:
    """``--restricted-key``'s ROLE: a JSON role descriptor, or comma-separated cluster privileges."""
    if text.lstrip().startswith("{"):
        value = json.loads(text)
        if not isinstance(value, dict):
            raise ValueError(f"expected a JSON object, got {text!r}")
        return value
    return [p.strip() for p in text.split(",") if p.strip()]


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser (every flag documented for ``--help``)."""
    parser = argparse.ArgumentParser(
        prog="python -m airflow_esml.testing.simulator",
        description="Run the Elasticsearch ML cluster simulator on a loopback port until interrupted. "
        "The first line printed is 'listening on URL'.",
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="loopback address to listen on (default: 127.0.0.1)")
    add("--port", type=int, default=0, help="port to listen on; 0 picks a free port (default: 0)")
    add(
        "--ml-node",
        action="append",
        type=_node,
        metavar="NAME:PROCESSORS",
        help="add an ML node with this many allocated processors; repeatable (default: ml-node-1:4 and ml-node-2:4)",
    )
    add(
        "--model",
        action="append",
        metavar="MODEL_ID",
        help="create a PyTorch trained model with this id; repeatable (default: my-e5)",
    )
    add(
        "--load-seconds",
        type=float,
        default=0.5,
        metavar="S",
        help="seconds a new allocation takes to load on a node (default: 0.5)",
    )
    add(
        "--autoscale",
        action="store_true",
        help="behave like an autoscaling cluster: add ML nodes for allocations that do not fit instead "
        "of answering 429",
    )
    add("--api-key", metavar="KEY", help="require this API key (Authorization: ApiKey KEY); it may do everything")
    add(
        "--restricted-key",
        action="append",
        nargs=2,
        metavar=("KEY", "ROLE"),
        help="accept also this API key, with only what ROLE grants: comma-separated cluster privileges "
        '(monitor_ml,manage_ml) or a JSON role descriptor ({"cluster": [...], "indices": [{"names": [...], '
        '"privileges": [...]}]}); other actions answer Elasticsearch\'s 403; repeatable',
    )
    add(
        "--serverless",
        action="store_true",
        help="answer as an Elastic Cloud Serverless project: build_flavor serverless, 410 for _nodes, _ml/info, "
        "_cluster/settings and the other operator-only APIs, number_of_allocations refused",
    )
    add(
        "--tls-dir",
        metavar="DIR",
        help="serve HTTPS; write a self-signed CA (ca.crt) and a server certificate into DIR",
    )
    add("--seed", type=int, metavar="N", help="seed for every random choice (faults, cluster)")
    add(
        "--es-version",
        default="9.5.1",
        metavar="V",
        help="simulated Elasticsearch version, 8.13 to 9.x (default: 9.5.1); 8.x refuses compatible-with=9",
    )
    add(
        "--deploy",
        action="append",
        type=_deploy,
        metavar=DEPLOY_FORM,
        help="start a deployment of this model at boot (default 1 allocation), named DEPLOYMENT_ID when given "
        "(default: the model id), e.g. my-e5-a=my-e5:1; repeatable",
    )
    add(
        "--infer-seconds-per-doc",
        type=float,
        default=0.005,
        metavar="S",
        help="simulated inference time per document (default: 0.005)",
    )
    add(
        "--endpoint",
        action="append",
        type=_endpoint,
        metavar=ENDPOINT_FORM,
        help="create an inference endpoint of the elasticsearch service at boot, which starts the deployment "
        "INFERENCE_ID of MODEL_ID (default task type: the built-in model's, else text_embedding; 1 allocation), e.g. "
        "sparse_embedding/my-elser=.elser_model_2:2; repeatable. Default endpoints (from 8.17) need no flag: "
        "they deploy on their first inference call",
    )
    add(
        "--scale-to-zero-seconds",
        type=float,
        metavar="S",
        help="idle time after which adaptive deployments with minimum 0 scale to zero "
        "(default: the version's, 15 minutes before 8.19, 24 hours from 8.19 and 9.1)",
    )
    add("--log-level", default="WARNING", help="Python logging level for the simulator (default: WARNING)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator until SIGINT/SIGTERM.

    :param argv: arguments (default: ``sys.argv[1:]``).
    :return: the exit code.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        restricted = {key: _role(role) for key, role in args.restricted_key or []}
    except ValueError as exc:
        parser.error(f"--restricted-key: {exc}")
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr)
    try:
        simulator = Simulator(
            ml_nodes=dict(args.ml_node) if args.ml_node else None,
            models=args.model or ("my-e5",),
            load_seconds=args.load_seconds,
            es_version=args.es_version,
            autoscale=args.autoscale,
            api_key=args.api_key,
            tls_dir=args.tls_dir,
            seed=args.seed,
            host=args.host,
            port=args.port,
            infer_seconds_per_doc=args.infer_seconds_per_doc,
            api_keys=restricted,
            serverless=args.serverless,
            scale_to_zero_seconds=args.scale_to_zero_seconds,
        )
    except ValueError as exc:  # e.g. a privilege the version does not know
        parser.error(str(exc))
    done = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    with simulator:
        for deployment_id, model_id, allocations in args.deploy or []:
            simulator.start_deployment(model_id, deployment_id=deployment_id, number_of_allocations=allocations)
        for endpoint in args.endpoint or []:
            simulator.create_endpoint(**endpoint)
        print(f"listening on {simulator.url}", flush=True)
        while not done.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
