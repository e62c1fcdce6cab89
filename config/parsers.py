"""DRF's JSON parser, also refusing JSON nested past Python's recursion limit with a 400."""

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class SafeJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            # json.loads raises RecursionError, not ValueError, on very deep nesting.
            raise ParseError("JSON parse error - nested too deeply") from None
