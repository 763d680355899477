"""What leaders and officers see: Tình hình nộp, one school's record, the year's ranking, the workbook.

`/status [month]` sums up the reader's scope (their office and every office below it; an officer only
their levels) in a short text to forward as is, with a chart (summary.py, charts.py, rollup.py);
`/status <school>` shows one school of the scope (school_card.py); `/ranking [school year]` ranks the
scope's schools by the communications score of `[ranking]` (ranking.py); `/export [month]` sends the
workbook that `schoolbot export status` writes (workbook.py). Nothing crosses the scope (reader.py).
Months are read by handlers/months.py, and a school's month is `months.month_state`.
"""
