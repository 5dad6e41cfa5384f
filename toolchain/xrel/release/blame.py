"""Who is to blame for a native file of the wrong target in a release: its dependency, and why."""

from __future__ import annotations

from pathlib import Path

from xrel.inspection.check import Report
from xrel.release.native import App


def likely_cause(app: App) -> str:
    """Why a dependency's native file is not for the target, by what kind of dependency it is."""
    if app.precompiler:
        return (f"dependency {app.name}: its {app.precompiler} artifact is not for this target "
                f"(a download for the wrong target?)")
    if app.native:
        return (f"dependency {app.name}: its build ({', '.join(app.kinds)}) did not use xrel's CC/CXX "
                f"(a hard-coded compiler?)")
    return f"dependency {app.name}: ships a prebuilt binary"


def explain(report: Report, apps: list[App]) -> None:
    """Set the origin of each bad file under lib/<app>-<vsn>/ to its app and the likely cause."""
    by_name = {a.name: a for a in apps}
    for finding in report.problems:
        parts = Path(finding.path).parts
        if len(parts) > 1 and parts[0] == "lib":
            app = by_name.get(parts[1].rsplit("-", 1)[0])
            if app is not None:
                finding.origin = likely_cause(app)
