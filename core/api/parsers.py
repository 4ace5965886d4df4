"""The API's JSON parser: the input hygiene rules of core/hygiene.py (no NaN/Infinity, a
depth limit, no NUL, 64-bit integers) applied to every JSON body, with a 400 that says
what is wrong instead of a server error."""

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from core import hygiene


class StrictJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream is not None else b""
        try:
            return hygiene.loads(raw)
        except hygiene.InputError as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc
