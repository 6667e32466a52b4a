"""The lean execution path: the same answers as graphql-core, a fraction of the CPU.

graphql-core resolves one field of one object at a time, through several layers of calls per
field; on a typeahead page of 10 incidents with 5 alerts each, or an incident with 50 alerts
and 50 log entries, that is most of the server's time. This path compiles a document once into
a plan (plan.py) and runs it level by level over lists of records (execute.py): one batch per
field, the very batches the normal path's resolvers call (app/api/fields.py), and leaves read off
the records and serialised by their GraphQL types.

What it covers (decisions.py): queries and the linkAlerts and ingestAlerts mutations over the
fields it has decided on, with aliases, fragments on the same type and variables; no
directives, no introspection, one mutation per document. Everything else goes the normal way,
before anything runs. A read that raises is run again by the normal path, which reports the
error (logged and counted in FALLBACKS). A mutation, once started, is answered here whatever
happens: success, a payload error, or the error itself (OUTCOME_UNKNOWN when its COMMIT's
outcome is unknown); it is never handed over or run twice.

Its responses are the normal path's, byte for byte: the whole behavioural suite runs on both
paths (tests/conftest.py), and tests/test_paths_agree.py compares them over generated documents.
"""

from app.api.lean.execute import FALLBACKS, LeanPath

__all__ = ["FALLBACKS", "LeanPath"]
