from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param


class FindingPagination(PageNumberPagination):
    """Pages of catalog.search.SearchResults: `count` is exact up to the search's candidate
    limit and capped beyond it (`count_capped`), so no page counts the whole catalog."""

    page_size_query_param = "page_size"
    max_page_size = 200

    def paginate_results(self, results, request, view=None):
        self.request = request
        size = self.get_page_size(request)
        try:
            number = max(1, int(request.query_params.get(self.page_query_param, 1)))
        except ValueError:
            number = 1
        self.search_page = results.page(number, size)
        return self.search_page.object_list

    def get_paginated_response(self, data):
        page = self.search_page
        url = self.request.build_absolute_uri()
        next_url = (
            replace_query_param(url, self.page_query_param, page.number + 1)
            if page.has_next()
            else None
        )
        if not page.has_previous():
            prev_url = None
        elif page.number == 2:
            prev_url = remove_query_param(url, self.page_query_param)
        else:
            prev_url = replace_query_param(url, self.page_query_param, page.number - 1)
        return Response(
            {
                "count": page.count,
                "count_capped": page.capped,
                "next": next_url,
                "previous": prev_url,
                "results": data,
            }
        )

    def get_paginated_response_schema(self, schema):
        base = super().get_paginated_response_schema(schema)
        base["properties"]["count_capped"] = {
            "type": "boolean",
            "description": "True when more findings match than `count` says (the cap).",
        }
        return base
