# schemathesis hooks for `make fuzz` and tests/fuzz.test.ts (loaded through SCHEMATHESIS_HOOKS).
#
# POST /v2/admin/skus:bulk takes its SKU list as application/x-ndjson or text/csv, the whole list
# one string (src/http/contract.ts). schemathesis sends any text/* body as text, but has no
# serializer for application/x-ndjson; this one sends the list as it is, in UTF-8, and a value of
# another type (negative cases) as its wire text, as schemathesis' own text/plain serializer does.
import schemathesis
from schemathesis.core.transforms import to_wire_text


@schemathesis.serializer("application/x-ndjson")
def ndjson_list(ctx, value):
    if isinstance(value, bytes):
        return value
    return to_wire_text(value).encode("utf-8")
