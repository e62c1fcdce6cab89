"""The simulator's HTTP API at the exact paths of the design."""

from django.urls import path

from simulator.api import views

urlpatterns = [
    path("simulator/start", views.StartApi.as_view(), name="simulator-start"),
    path("simulator/stop", views.StopApi.as_view(), name="simulator-stop"),
    path("simulator/status", views.StatusApi.as_view(), name="simulator-status"),
    path("simulator/active", views.ActiveApi.as_view(), name="simulator-active"),
    path("simulator/runs", views.RunListApi.as_view(), name="simulator-runs"),
    path("simulator/runs/<int:run_id>", views.RunDetailApi.as_view(), name="simulator-run"),
    path("simulator/runs/<int:run_id>/trades", views.RunTradesApi.as_view(), name="simulator-run-trades"),
    path("simulator/runs/<int:run_id>/equity", views.RunEquityApi.as_view(), name="simulator-run-equity"),
    path("simulator/trades/<int:trade_id>", views.TradeDetailApi.as_view(), name="simulator-trade"),
    path("simulator/report", views.ReportApi.as_view(), name="simulator-report"),
    path("simulator/recordings", views.RecordingsApi.as_view(), name="simulator-recordings"),
    path("simulator/backtests", views.BacktestListApi.as_view(), name="simulator-backtests"),
    path(
        "simulator/backtests/<int:backtest_id>", views.BacktestDetailApi.as_view(), name="simulator-backtest"
    ),
    path(
        "simulator/backtests/<int:backtest_id>/results",
        views.BacktestResultsApi.as_view(),
        name="simulator-backtest-results",
    ),
    path(
        "simulator/backtests/<int:backtest_id>/results.csv",
        views.BacktestResultsCsvApi.as_view(),
        name="simulator-backtest-results-csv",
    ),
    path("simulator/pairs", views.PairListApi.as_view(), name="simulator-pairs"),
    path("execution/intents/<int:intent_id>", views.IntentDetailApi.as_view(), name="execution-intent"),
]
