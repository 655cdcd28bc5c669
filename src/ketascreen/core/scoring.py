"""Scores of the validated questionnaires in ``instruments``, computed here, never taken from callers.

Cut-offs and bands (reference Part 2 §6): PHQ-9 5/10/15/20 [S94]; GAD-7 5/10/15 [S95];
AUDIT-C positive at 4 or more for men, 3 or more for women and others [S102][S103];
DAST-10 item 3 reverse-scored, 0 / 1-2 / 3-5 / 6-8 / 9-10 [S105]; PCL-5 probable PTSD at 33
[S96][S98]; MDQ positive with 7 or more items, clustered, and moderate or serious impairment
[S99]; C-SSRS screener risk from the items and recency of behaviour [S106].
"""

from __future__ import annotations

from ketascreen.core.model import Instruments, Score


def _band(total: int, cuts: list[tuple[int, str]]) -> str:
    label = cuts[0][1]
    for threshold, name in cuts:
        if total >= threshold:
            label = name
    return label


def cssrs_risk(c: object) -> str:
    """``low``, ``moderate`` or ``high`` from the C-SSRS screener answers."""
    intent = getattr(c, "intent", False)
    plan = getattr(c, "plan", False)
    behavior = getattr(c, "behavior_3mo", False)
    if intent or plan or behavior:
        return "high"
    if getattr(c, "method", False):
        return "moderate"
    return "low"


def score_instruments(inst: Instruments | None, sex: str) -> dict[str, Score]:
    if inst is None:
        return {}
    out: dict[str, Score] = {}
    if inst.phq9 is not None:
        total = sum(inst.phq9)
        band = _band(total, [(0, "minimal"), (5, "mild"), (10, "moderate"),
                             (15, "moderately severe"), (20, "severe")])
        out["phq9"] = Score(instrument="PHQ-9", score=total, band=band, positive=total >= 10,
                            detail=f"item 9 = {inst.phq9[8]}")
    if inst.gad7 is not None:
        total = sum(inst.gad7)
        band = _band(total, [(0, "minimal"), (5, "mild"), (10, "moderate"), (15, "severe")])
        out["gad7"] = Score(instrument="GAD-7", score=total, band=band, positive=total >= 10)
    if inst.audit_c is not None:
        total = sum(inst.audit_c)
        cut = 4 if sex == "male" else 3
        out["audit_c"] = Score(instrument="AUDIT-C", score=total,
                               band="positive" if total >= cut else "negative",
                               positive=total >= cut, detail=f"cut-off {cut} for sex {sex}")
    if inst.dast10 is not None:
        answers = list(inst.dast10)
        total = sum(1 for i, yes in enumerate(answers) if (not yes if i == 2 else yes))
        band = _band(total, [(0, "none"), (1, "low"), (3, "moderate"), (6, "substantial"),
                             (9, "severe")])
        out["dast10"] = Score(instrument="DAST-10", score=total, band=band, positive=total >= 3)
    if inst.pcl5 is not None:
        total = sum(inst.pcl5)
        positive = total >= 33
        out["pcl5"] = Score(instrument="PCL-5", score=total,
                            band="probable PTSD" if positive else "below cut-off",
                            positive=positive)
    if inst.mdq is not None:
        yes = sum(inst.mdq.items)
        positive = yes >= 7 and inst.mdq.clustered and inst.mdq.impairment in (
            "moderate", "serious")
        out["mdq"] = Score(instrument="MDQ", score=yes,
                           band="positive" if positive else "negative", positive=positive)
    if inst.cssrs_screen is not None:
        risk = cssrs_risk(inst.cssrs_screen)
        out["cssrs_screen"] = Score(instrument="C-SSRS screener", band=risk,
                                    positive=risk != "low" or inst.cssrs_screen.wish_dead
                                    or inst.cssrs_screen.active_thoughts)
    return out
