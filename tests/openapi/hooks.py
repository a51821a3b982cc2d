"""scripts/test-openapi's own check, loaded by schemathesis (SCHEMATHESIS_HOOKS=hooks).

`POST /v1/events` refuses a few events that JSON Schema cannot single out: one player on both
sides of a match, more than 100 players in all, scores for a player of another side. The
GameEvent schema states them in its description. This check is `positive_data_acceptance`
for that route (its own is disabled in schemathesis.toml) less those documented refusals:
any other 400 for a schema-valid event is still a finding.
"""

import schemathesis

# The messages of the refusals GameEvent's description names and no schema keyword can state.
DOCUMENTED = (
    "winner and loser are the same player",
    "a different player than p1_id",
    "with each player once",
)


@schemathesis.check
def ingest_accepts_valid_events(ctx, response, case):
    if case.operation.method.upper() != "POST" or case.operation.path != "/v1/events":
        return None
    if response.status_code != 400 and response.status_code != 422:
        return None
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = response.text
    if any(rule in message for rule in DOCUMENTED):
        return None
    raise AssertionError(f"a schema-valid event was refused: {message}")
