"""manage.py sim_backtest --recording FILE --user U [--grid setting=v1,v2 ...] [--starting-usd N]
[--seed S] [--workers N] [--label L] [--csv FILE] [--json]"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from config.errors import DomainError
from config.progress import Progress
from ingest.recording import RecordingError
from simulator import backtests
from simulator.backtest_results import results_csv, sorted_by_pnl
from simulator.management.commands.sim_start import command_error, user_named
from simulator.models import Backtest

TABLE = (
    ("P&L $", "expected_pnl_usd", 11),
    ("realised $", "realised_pnl_usd", 10),
    ("trades", "trades", 6),
    ("decided", "decisions", 7),
    ("capture", "capture_rate", 7),
    ("drawdown $", "max_drawdown_usd", 10),
    ("fees $", "fees_usd", 9),
    ("legged", "legging_incidents", 6),
    ("unwind $", "unwind_cost_usd", 9),
)


class Command(BaseCommand):
    help = (
        "Backtest a recording over a grid of settings: each grid point is a run of kind backtest, "
        "decided by the live engine on the recording's clock against its books. Prints the points "
        "best P&L first."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--recording",
            required=True,
            help="a recording's name (bundled/..., dir/..., upload/...) or a file's path",
        )
        parser.add_argument("--user", required=True, help="whose backtest (username)")
        parser.add_argument(
            "--grid", nargs="*", default=[], metavar="SETTING=V1,V2", help=backtests.GRID_HELP
        )
        parser.add_argument(
            "--starting-usd", default="1000", help="each point's starting balance (default 1000)"
        )
        parser.add_argument("--seed", default=None, help="the runs' seed (default: random, printed)")
        parser.add_argument("--workers", default="1", help="processes for the grid points (default 1)")
        parser.add_argument("--label", default="")
        parser.add_argument(
            "--columnar",
            action="store_true",
            help="convert the recording once into a columnar file beside it (<name>.columnar.parquet) "
            "and run the detector's pass column-wise from it: the same results, faster from the "
            "second backtest of the file on (a current cache is used without this option)",
        )
        parser.add_argument("--csv", type=Path, metavar="FILE", help="also write the results as CSV")
        parser.add_argument(
            "--json", action="store_true", help="print the results as JSON instead of a table"
        )

    def handle(self, *args, **options):
        user = user_named(options["user"])
        try:
            backtest = backtests.create_backtest(
                user=user,
                recording=options["recording"],
                grid=options["grid"],
                starting_usd=options["starting_usd"],
                seed=options["seed"],
                workers=options["workers"],
                label=options["label"],
                allow_any_path=True,
            )
        except (ValidationError, DomainError) as error:
            raise command_error(error) from None
        if not options["json"]:
            self.stdout.write(
                f"backtest {backtest.pk}: {backtest.recording}, {backtest.points_total} grid points, "
                f"seed {backtest.seed}, {backtest.workers} worker(s)"
            )
        with Progress(f"backtest {backtest.pk}", unit="updates", stream=self.stderr) as progress:

            def show(current: Backtest) -> None:
                state = current.progress or {}
                progress.update(
                    done=state.get("updates", 0),
                    phase=state.get("phase", ""),
                    points=f"{current.points_done}/{current.points_total}",
                )

            try:
                backtest = backtests.run_backtest(backtest.pk, on_progress=show, columnar=options["columnar"])
            except (RecordingError, OSError, ValueError, LookupError, RuntimeError) as error:
                raise CommandError(f"backtest {backtest.pk} failed: {error}") from None
        results = sorted_by_pnl(backtest.results)
        if options["csv"]:
            options["csv"].write_text(results_csv(backtest.results, backtests.setting_names(backtest.grid)))
        if options["json"]:
            self.stdout.write(json.dumps({"id": backtest.pk, "results": results}, indent=2))
            return
        self._table(backtest, results)
        if options["csv"]:
            self.stdout.write(f"CSV: {options['csv']}")

    def _table(self, backtest: Backtest, results: list[dict]) -> None:
        names = backtests.setting_names(backtest.grid)
        widths = [max(len(name), 8) for name in names]
        header = [name.ljust(width) for name, width in zip(names, widths, strict=True)]
        header += [title.rjust(width) for title, _, width in TABLE]
        self.stdout.write("  ".join(header))
        for result in results:
            cells = [
                str(result["settings"].get(name, "")).ljust(width)
                for name, width in zip(names, widths, strict=True)
            ]
            cells += [
                ("-" if result[key] is None else str(result[key])).rjust(width) for _, key, width in TABLE
            ]
            self.stdout.write("  ".join(cells))
        self.stdout.write(
            f"done: {len(results)} points over {backtest.progress.get('updates', 0)} updates; "
            f"runs {', '.join(str(r['run_id']) for r in backtest.results)}"
        )
