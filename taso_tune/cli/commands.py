"""CLI commands: each module adds its subparser and a handler that calls into the library."""

from taso_tune.cli.apply import add_apply_parser
from taso_tune.cli.cluster import add_check_cluster_parser
from taso_tune.cli.dashboard import add_dashboard_parser
from taso_tune.cli.jobs import add_jobs_parsers, add_submit_parser
from taso_tune.cli.optimizers import add_optimizers_parser
from taso_tune.cli.report import add_export_parser, add_report_parser
from taso_tune.cli.sweep import add_resume_parser, add_sweep_parser
from taso_tune.cli.train import add_schedule_parser, add_train_parser

COMMANDS = [
    add_train_parser,
    add_schedule_parser,
    add_optimizers_parser,
    add_sweep_parser,
    add_resume_parser,
    add_apply_parser,
    add_submit_parser,
    add_jobs_parsers,
    add_dashboard_parser,
    add_check_cluster_parser,
    add_report_parser,
    add_export_parser,
]
