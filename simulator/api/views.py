"""The simulator's HTTP API: thin views (parse with a serializer, call one service or read one
queryset scoped to the user, answer with the presenters' JSON). Another user's id is a 404."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpResponse
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.generics import GenericAPIView, ListAPIView
from rest_framework.parsers import MultiPartParser
from rest_framework.renderers import BaseRenderer
from rest_framework.response import Response

from config.renderers import ORJSONRenderer
from ingest.models import ExecutionIntent, MarketPair
from ingest.recording import RecordingError
from ingest.recording_files import RecordingTooLarge, available_recordings, upload_recording
from simulator import backtest_tasks, backtests, presenters, selectors, services
from simulator.api import serializers as s
from simulator.backtest_results import results_csv, sorted_by_pnl
from simulator.models import Decision, SimulatorRun, SimulatorTrade
from simulator.report import build_report

RECENT_TRADES = 20


class ApiView(GenericAPIView):
    """DRF's view that lets go of its objects once the response is rendered, under ASGI.

    Django's ASGI handler leaves every response in a reference cycle (the traceback of the
    exception that ends its task group holds the frame that holds the response), and a DRF view
    and its response point at each other. So the response's `data`, the view's page of model
    rows and their decoded JSON would wait for the cyclic garbage collector, whose collections
    then walk them in pauses of tens of milliseconds under load. Released after rendering, they
    are freed at once by reference counting. The test client (WSGI) keeps `response.data`.
    """

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if isinstance(request._request, ASGIRequest) and hasattr(response, "add_post_render_callback"):
            response.add_post_render_callback(self._release)
        return response

    def _release(self, rendered_response) -> None:
        rendered_response.data = None
        rendered_response.renderer_context = None
        self.__dict__.clear()


def _own_run(request, run_id: int) -> SimulatorRun:
    run = selectors.own_run(user_id=request.user.pk, run_id=run_id)
    if run is None:
        raise NotFound(f"run {run_id} not found among your simulator runs")
    return run


class StartApi(ApiView):
    serializer_class = s.StartInputSerializer

    @extend_schema(request=s.StartInputSerializer, responses={201: s.StartedRunOut})
    def post(self, request):
        """Start a run with fake money. Warnings say what will make its checks skip trades."""
        body = self.get_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        run, warnings = services.start_run(user=request.user, **body.validated_data)
        return Response({**presenters.run_json(run), "warnings": warnings}, status=status.HTTP_201_CREATED)


class StopApi(ApiView):
    serializer_class = s.StopInputSerializer

    @extend_schema(request=s.StopInputSerializer, responses=s.RunOut)
    def post(self, request):
        """Stop a run (no run_id: your most recently started running run)."""
        body = self.get_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        reason = body.validated_data["reason"] or "stopped by user"
        run = services.stop_run(user=request.user, run_id=body.validated_data.get("run_id"), reason=reason)
        return Response(presenters.run_json(run))


class StatusApi(ApiView):
    @extend_schema(responses=s.StatusOut)
    def get(self, request):
        """Your running runs and your latest trades."""
        runs = selectors.running_runs(user_id=request.user.pk).order_by("-started_at", "-id")
        now = timezone.now()
        return Response(
            {
                "runs": [presenters.run_json(run) for run in runs],
                "recent_trades": [
                    presenters.trade_json(trade, now)
                    for trade in selectors.latest_trades(user_id=request.user.pk)[:RECENT_TRADES]
                ],
            }
        )


class ActiveApi(ApiView):
    @extend_schema(responses=s.ActiveOut)
    def get(self, request):
        """Whether you have a running run, and which."""
        runs = [
            presenters.run_json(run)
            for run in selectors.running_runs(user_id=request.user.pk).order_by("-started_at", "-id")
        ]
        return Response(
            {
                "active": bool(runs),
                "count": len(runs),
                "max_running": settings.SIMULATOR_MAX_RUNNING_PER_USER,
                "runs": runs,
            }
        )


class _PresentedListApi(ApiView, ListAPIView):
    """A paginated list whose rows come from a presenter (the schema from `serializer_class`)."""

    def present(self, row) -> dict:
        raise NotImplementedError

    def present_page(self, page: list) -> list[dict]:
        return [self.present(row) for row in page]

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(self.present_page(page))


class RunListApi(_PresentedListApi):
    """Your runs, newest first."""

    serializer_class = s.RunOut

    def get_queryset(self):
        return selectors.user_runs(user_id=self.request.user.pk)

    def present_page(self, page: list) -> list[dict]:
        return [presenters.run_json(run) for run in page]


class RunDetailApi(ApiView):
    @extend_schema(responses=s.RunOut)
    def get(self, request, run_id: int):
        return Response(presenters.run_json(_own_run(request, run_id)))


class RunTradesApi(_PresentedListApi):
    """One run's trades, newest first."""

    serializer_class = s.TradeOut

    def get_queryset(self):
        run = _own_run(self.request, self.kwargs["run_id"])
        self.now = timezone.now()
        return selectors.run_trades(run_id=run.pk)

    def present(self, row) -> dict:
        return presenters.trade_json(row, self.now)


class RunEquityApi(ApiView):
    @extend_schema(responses=s.EquityOut)
    def get(self, request, run_id: int):
        """The equity curve, in time order: a point when a trade's orders have arrived (its cost
        leaves the balance, its expected P&L adds up; a trade still in flight has no cost yet),
        and one when its pair resolved (its payout comes in, realised P&L moves)."""
        run = _own_run(request, run_id)
        rows = (
            SimulatorTrade.objects.filter(run=run)
            .exclude(arrival_outcome="")
            .values_list("id", "decided_at", "cost_usd", "expected_pnl_usd", "resolved_at", "payout_usd")
        )
        events = []
        for trade_id, decided_at, cost, expected, resolved_at, payout in rows:
            events.append((decided_at, 0, trade_id, -cost, expected, Decimal(0)))
            if resolved_at is not None:
                events.append((resolved_at, 1, trade_id, payout, Decimal(0), payout - cost))
        balance, expected_pnl, realised_pnl = run.starting_usd, Decimal(0), Decimal(0)
        points = []
        for at, kind, trade_id, cash, expected, realised in sorted(events, key=lambda e: e[:3]):
            balance += cash
            expected_pnl += expected
            realised_pnl += realised
            points.append(
                presenters.equity_point_json(
                    trade_id=trade_id,
                    at=at,
                    balance_usd=balance,
                    expected_pnl_usd=expected_pnl,
                    realised_pnl_usd=realised_pnl,
                    event="resolved" if kind else "arrived",
                )
            )
        return Response(
            {"run_id": run.pk, "starting_usd": presenters.decimal_str(run.starting_usd), "points": points}
        )


class TradeDetailApi(ApiView):
    @extend_schema(responses=s.TradeOut)
    def get(self, request, trade_id: int):
        """One trade with everything: legs (fills and the book they came from), checks, validation."""
        trade = SimulatorTrade.objects.filter(pk=trade_id, user=request.user).first()
        if trade is None:
            raise NotFound(f"trade {trade_id} not found among your simulator trades")
        return Response(presenters.trade_json(trade))


class IntentDetailApi(ApiView):
    @extend_schema(responses=s.IntentOut)
    def get(self, request, intent_id: int):
        """An execution intent, with the trades and decisions your runs made on it."""
        intent = ExecutionIntent.objects.filter(pk=intent_id, user=request.user).first()
        if intent is None:
            raise NotFound(f"intent {intent_id} not found among your execution intents")
        trades = SimulatorTrade.objects.filter(intent=intent, user=request.user).order_by("id")
        decisions = (
            Decision.objects.filter(intent=intent, run__user=request.user)
            .select_related("trade")
            .order_by("id")
        )
        return Response(presenters.intent_json(intent, trades=trades, decisions=decisions))


class ReportApi(ApiView):
    throttle_scope = "report"

    @extend_schema(parameters=[s.ReportParamsSerializer], responses=s.ReportOut)
    def get(self, request):
        """How many success spans your runs caught in the last `hours`, and why the others were missed."""
        params = s.ReportParamsSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        return Response(build_report(user=request.user, now=timezone.now(), **params.validated_data))


class PairListApi(_PresentedListApi):
    """The opportunity keys the simulator knows (active pairs), for the start form."""

    serializer_class = s.PairOut

    def get_queryset(self):
        return MarketPair.objects.filter(active=True).order_by("opportunity_key")

    def present(self, row) -> dict:
        return presenters.pair_json(row)


# --- Recordings and backtests --------------------------------------------------------------------

UPLOAD_CHUNK_BYTES = 1 << 20
# A multipart body carries its boundaries and part headers besides the file.
MULTIPART_OVERHEAD_BYTES = 64 * 1024


class RecordingsApi(ApiView):
    parser_classes = [MultiPartParser]
    serializer_class = s.RecordingUploadSerializer

    @extend_schema(responses=s.RecordingListOut)
    def get(self, request):
        """The recordings you may backtest: the bundled ones, the recordings directory's, your uploads."""
        refs = available_recordings(user_id=request.user.pk)
        return Response({"results": [presenters.recording_json(ref) for ref in refs]})

    @extend_schema(
        request={"multipart/form-data": s.RecordingUploadSerializer},
        responses={
            201: s.UploadedRecordingOut,
            400: OpenApiResponse(s.UploadErrorOut, description="Not a recording: its first bad line named."),
            413: OpenApiResponse(s.UploadErrorOut, description="Larger than the upload limit."),
        },
    )
    def post(self, request):
        """Upload a recording (.jsonl.gz): kept as upload/<file name> for you once every line checks."""
        limit = settings.RECORDING_UPLOAD_MAX_BYTES
        if _content_length(request) > limit + MULTIPART_OVERHEAD_BYTES:
            raise RecordingTooLarge(limit)  # refused before the multipart body is parsed
        body = self.get_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        upload = body.validated_data["file"]
        if upload.size > limit:
            raise RecordingTooLarge(limit)
        ref, summary = upload_recording(request.user.pk, upload.name, upload.chunks(UPLOAD_CHUNK_BYTES))
        return Response(
            {**presenters.recording_json(ref), "summary": summary.as_json()}, status=status.HTTP_201_CREATED
        )

    def handle_exception(self, exc):
        if isinstance(exc, RecordingTooLarge):
            return Response({"file": [str(exc)]}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        if isinstance(exc, RecordingError):
            return Response({"file": [str(exc)]}, status=status.HTTP_400_BAD_REQUEST)
        return super().handle_exception(exc)


def _content_length(request) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0  # the body's parser says what is wrong with it


def _backtest_json(backtest) -> dict:
    return presenters.backtest_json(backtest, selectors.backtest_run_ids([backtest.pk])[backtest.pk])


class BacktestListApi(_PresentedListApi):
    """Your backtests, newest first."""

    serializer_class = s.BacktestOut

    def get_queryset(self):
        return selectors.user_backtests(user_id=self.request.user.pk)

    def present_page(self, page: list) -> list[dict]:
        run_ids = selectors.backtest_run_ids([backtest.pk for backtest in page])
        return [presenters.backtest_json(backtest, run_ids[backtest.pk]) for backtest in page]

    @extend_schema(request=s.BacktestInputSerializer, responses={202: s.StartedBacktestOut})
    def post(self, request):
        """Backtest a recording over a grid of settings: one run of kind backtest per grid point,
        run in the background. Poll status_url; results_url answers once it is done."""
        body = s.BacktestInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        backtest = backtest_tasks.start_backtest(user=request.user, **body.validated_data)
        return Response(
            {
                **_backtest_json(backtest),
                "status_url": reverse("simulator-backtest", args=[backtest.pk]),
                "results_url": reverse("simulator-backtest-results", args=[backtest.pk]),
            },
            status=status.HTTP_202_ACCEPTED,
        )


class BacktestDetailApi(ApiView):
    @extend_schema(responses=s.BacktestOut)
    def get(self, request, backtest_id: int):
        """A backtest: its status and how far it is."""
        return Response(
            _backtest_json(backtests.own_backtest(user_id=request.user.pk, backtest_id=backtest_id))
        )


class BacktestResultsApi(ApiView):
    @extend_schema(
        responses={
            200: s.BacktestResultsOut,
            409: OpenApiResponse(s.ErrorOut, description="Not done yet (how far it is), or failed (why)."),
        }
    )
    def get(self, request, backtest_id: int):
        """Each grid point's results, best expected P&L first."""
        backtest = backtests.finished_backtest(user_id=request.user.pk, backtest_id=backtest_id)
        return Response(
            {
                "id": backtest.pk,
                "status": backtest.status,
                "grid": backtest.grid,
                "results": sorted_by_pnl(backtest.results),
            }
        )


class CSVRenderer(BaseRenderer):
    """Lets a client that asks for text/csv in Accept reach the CSV (errors stay JSON)."""

    media_type = "text/csv"
    format = "csv"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data


class BacktestResultsCsvApi(ApiView):
    renderer_classes = [ORJSONRenderer, CSVRenderer]

    @extend_schema(
        responses={
            (200, "text/csv"): OpenApiTypes.STR,
            409: OpenApiResponse(s.ErrorOut, description="Not done yet (how far it is), or failed (why)."),
        }
    )
    def get(self, request, backtest_id: int):
        """The results as CSV, best expected P&L first: a column per grid setting, then the figures."""
        backtest = backtests.finished_backtest(user_id=request.user.pk, backtest_id=backtest_id)
        response = HttpResponse(
            results_csv(backtest.results, backtests.setting_names(backtest.grid)), content_type="text/csv"
        )
        response["Content-Disposition"] = f'attachment; filename="backtest-{backtest.pk}.csv"'
        return response

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if isinstance(response, Response):  # an error: JSON, whatever was asked for
            response.accepted_renderer = ORJSONRenderer()
            response.accepted_media_type = ORJSONRenderer.media_type
        return response
