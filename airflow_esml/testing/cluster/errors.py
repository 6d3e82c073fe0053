"""Errors of the ML APIs that several modules raise, with Elasticsearch's exact messages."""

from __future__ import annotations

from airflow_esml.testing.protocol import EsError


def not_found_deployment(deployment_id: str) -> EsError:
    return EsError(404, "resource_not_found_exception", f"No known model deployment with id [{deployment_id}]")


def not_found_model(model_id: str) -> EsError:
    return EsError(404, "resource_not_found_exception", f"No known trained model with model_id [{model_id}]")


def start_capacity_error(placed: int, reason: str | None) -> EsError:
    if placed == 0:
        return EsError(
            429,
            "status_exception",
            "Could not start deployment because no ML nodes with sufficient capacity were found",
            caused_by={
                "type": "illegal_state_exception",
                "reason": "Could not start deployment because no suitable nodes were found, "
                f"allocation explanation [{reason or ''}]",
            },
        )
    return EsError(
        429,
        "status_exception",
        "Could not start deployment because there are not enough resources to provide all requested allocations",
    )
