"""DRF's page-number pagination, reading `page` with the product's number rule: a malformed page
("1e3", "1,000", Arabic-Indic digits) is a 400 naming `page` and the accepted range; a page past the end stays
DRF's 404."""

from __future__ import annotations

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination

from config.numbers import NumberError, WholeRule

PAGE = WholeRule(1, 1_000_000_000)


class CheckedPageNumberPagination(PageNumberPagination):
    def get_page_number(self, request, paginator) -> int | str:
        raw = request.query_params.get(self.page_query_param, "")
        if raw in self.last_page_strings:
            return paginator.num_pages
        if not raw.strip():
            return 1
        try:
            return PAGE.parse(raw)
        except NumberError as error:
            raise ValidationError({self.page_query_param: [f"{error}, or 'last'"]}) from None
