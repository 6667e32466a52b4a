"""How an incident created by a move is named after its alerts.

The rule, in Defender's style:
- the alerts share one title: that title;
- one category: "Multiple <Category> alerts on <devices>";
- several categories: "Multi-stage incident involving <A>, <B> & <C> on <devices>", the
  categories in the order of the alerts' detection, "& N more" past four;
- <devices> is the device's name when there is one, "<n> devices" for several, and the
  " on ..." part is left out when the alerts name no device.
Names are cut to 1,000 characters.
"""

from __future__ import annotations

import re

MAX_NAME = 1000
MAX_CATEGORIES = 4


def humanize_category(category: str) -> str:
    """'LateralMovement' -> 'Lateral Movement'; 'command_and_control' -> 'Command And Control'."""
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", category.replace("_", " ")).strip()
    return " ".join(w[:1].upper() + w[1:] for w in spaced.split()) or category


def _join(items: list[str]) -> str:
    if len(items) > MAX_CATEGORIES:
        items = [*items[: MAX_CATEGORIES - 1], f"{len(items) - MAX_CATEGORIES + 1} more"]
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " & " + items[-1]


def incident_name(titles: list[str], categories: list[str], devices: list[str]) -> str:
    """Name for a new incident holding alerts with these titles, categories and device names.

    titles and categories are in the alerts' detection order; devices are distinct values.
    """
    distinct_titles = list(dict.fromkeys(titles))
    if len(distinct_titles) == 1:
        return distinct_titles[0][:MAX_NAME]
    cats = list(dict.fromkeys(humanize_category(c) for c in categories))
    if len(devices) == 1:
        where = f" on {devices[0]}"
    elif devices:
        where = f" on {len(devices)} devices"
    else:
        where = ""
    if len(cats) == 1:
        name = f"Multiple {cats[0]} alerts{where}"
    else:
        name = f"Multi-stage incident involving {_join(cats)}{where}"
    return name[:MAX_NAME]
