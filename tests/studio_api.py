"""The Prefect server's REST API as the studio's tests read it: flow runs, deployments, a run made as the UI's Run
button makes one; a busy server's 503 and a timed-out read are tried again."""

from __future__ import annotations

import time

import httpx


def call(method: str, url: str, **kwargs: object) -> httpx.Response:
    """One request to the server, waiting up to a minute for a busy one; its 503 is tried again, as Prefect's own client
    does, and so is a timed-out read (a create is never sent twice)."""
    reading = method == "GET" or url.endswith("/filter")
    for attempt in range(20):
        try:
            response = httpx.request(method, url, timeout=60, **kwargs)  # type: ignore[arg-type]
        except httpx.TimeoutException:
            if not reading or attempt == 19:
                raise
            continue
        if response.status_code != 503:
            return response
        time.sleep(0.5)
    return response

def flow_runs(api: str, **criteria: object) -> list[dict[str, object]]:
    response = call("POST", f"{api}/flow_runs/filter", json={"flow_runs": criteria, "limit": 50, "offset": 0,
                                                             "sort": "ID_DESC"})
    response.raise_for_status()
    return response.json()

def flow_run(api: str, run_id: object) -> dict[str, object]:
    response = call("GET", f"{api}/flow_runs/{run_id}")
    response.raise_for_status()
    return response.json()

def deployment(api: str, name: str) -> dict[str, object]:
    response = call("POST", f"{api}/deployments/filter", json={"deployments": {"name": {"any_": [name]}}, "limit": 1,
                                                               "offset": 0, "sort": "NAME_ASC"})
    response.raise_for_status()
    return response.json()[0]

def create_run(api: str, name: str, parameters: dict[str, object]) -> dict[str, object]:
    """A flow run of the deployment, as the UI's Run button makes one."""
    response = call("POST", f"{api}/deployments/{deployment(api, name)['id']}/create_flow_run",
                    json={"parameters": parameters})
    assert response.status_code == 201, response.text
    return response.json()
