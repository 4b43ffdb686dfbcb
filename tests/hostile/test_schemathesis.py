"""Schemathesis against the app's own OpenAPI document, on the embedded default through ASGI.

Every phase schemathesis supports runs (probing, schema analysis, examples, coverage, fuzzing with positive
and negative data, and the stateful phase over the links it infers: create a job, then read / cancel /
stream it, ...), authenticated with a real tenant key. Every response must be a non-5xx that conforms to
the document: documented status code, documented content type, body valid against the response schema,
documented headers, a correct `Allow` on 405, and invalid input refused.

`positive_data_acceptance` is off on purpose: the schema cannot say which classes a dataset has, which
cursors were issued or which ids exist, so a schema-valid request is often rightly a 404 / 409 / 422.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest

MAX_EXAMPLES = int(os.environ.get("SIMTRAIN_SCHEMATHESIS_EXAMPLES", "15"))
SEED = int(os.environ.get("SIMTRAIN_SCHEMATHESIS_SEED", "20240601"))
# Valid bodies the schema cannot describe (real class names of builtin:digits): given to schemathesis as
# OpenAPI examples, so the examples phase creates real jobs and comparisons and the stateful phase follows
# their links (read, events, metrics, cancel, ...) with ids that exist.
JOB_EXAMPLE = {
    "dataset": "builtin:digits",
    "classes": ["0", "1", "2"],
    "similarity": {"kind": "ordinal", "reduction_factor": 0.5},
    "loss": {"kind": "simloss"},
    "model": {"kind": "linear"},
    "training": {"epochs": 2},
}
BODY_EXAMPLES = {
    ("/v1/jobs", "post"): JOB_EXAMPLE,
    ("/v1/comparisons", "post"): {
        "dataset": "builtin:digits",
        "classes": ["0", "1", "2"],
        "similarity": {"kind": "ordinal"},
        "variants": [{"name": "simloss", "loss": {"kind": "simloss"}}],
        "seeds": 1,
        "training": {"epochs": 2},
    },
    ("/v1/similarity/preview", "post"): {"classes": ["a", "b", "c"], "similarity": {"kind": "ordinal"}},
    ("/v1/similarity/preview.png", "post"): {"classes": ["a", "b"], "similarity": {"kind": "identity"}},
}
REQUIRED_CHECKS = {
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "negative_data_rejection",
}


@pytest.mark.timeout(240)
def test_schemathesis_all_phases(embedded):
    import schemathesis
    from schemathesis.engine import events, from_schema

    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "headers": {"Authorization": f"Bearer {embedded.key_a}"},
            "generation": {"max-examples": MAX_EXAMPLES, "mode": "all", "database": "none"},
            "checks": {"positive_data_acceptance": {"enabled": False}},
            "request-timeout": 10,
            "max-stream-events": 1,
            # the event stream of a queued job stays open (keepalives only when `after` is past its
            # events): what it sent within a second is checked, then it is cut
            "operations": [{"include-name": "GET /v1/jobs/{job_id}/events/stream", "request-timeout": 1}],
        }
    )
    document = embedded.client.get("/openapi.json").json()
    for (path, method), example in BODY_EXAMPLES.items():
        content = document["paths"][path][method]["requestBody"]["content"]["application/json"]
        content["examples"] = {"valid": {"value": example}}
    schema = schemathesis.openapi.from_dict(document, config=config)
    schema.app = embedded.app  # what from_asgi does: requests go to the app in process
    schema.location = "/openapi.json"

    failures: list[str] = []
    errors: list[str] = []
    checks_run: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    phases: dict[str, str] = {}
    transitions = 0
    finished = None
    for event in from_schema(schema).execute():
        if isinstance(event, events.PhaseStarted) and event.payload is not None:
            transitions = event.payload.transitions_selected
        elif isinstance(event, events.PhaseFinished):
            phases[event.phase.name.value] = str(event.status.value)
        elif isinstance(event, events.NonFatalError):  # an exception escaped the app: a 500
            errors.append(f"{event.label}: {event.value!r}")
        elif isinstance(event, events.FatalError):
            errors.append(repr(event.exception))
        elif isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            for interaction in recorder.interactions.values():
                if interaction.response is not None:
                    statuses[interaction.response.status_code] += 1
            for nodes in recorder.checks.values():
                for node in nodes:
                    checks_run[node.name] += 1
                    if node.failure_info is not None:
                        failure = node.failure_info.failure
                        failures.append(
                            f"[{event.phase.value}] {recorder.label}: {node.name}: {failure.title}\n"
                            f"{failure.message}\n{node.failure_info.code_sample}"
                        )
        elif isinstance(event, events.EngineFinished):
            finished = event

    report = f"phases={phases} statuses={dict(statuses)} checks={dict(checks_run)}"
    print(report)
    assert finished is not None and finished.stop_reason.value == "completed", report
    assert not errors, f"{len(errors)} errors:\n" + "\n".join(sorted(set(errors))[:20])
    assert not failures, f"{len(failures)} failures:\n" + "\n\n".join(sorted(set(failures))[:20])
    # the run really exercised the API
    for phase in ("coverage", "fuzzing", "stateful"):
        assert phases.get(phase) == "success", report
    assert transitions > 0, "the stateful phase found no links"
    assert REQUIRED_CHECKS <= set(checks_run), report
    assert not any(code >= 500 for code in statuses), report
    assert statuses[201] > 0 and statuses[202] > 0, f"no job was created and cancelled: {report}"
    assert statuses[200] > 20, f"too few accepted requests: {report}"
    assert statuses[401] > 0 and statuses[422] > 0, report
