"""The automation condition every asset downstream of a dataset carries (see ``automation``)."""

from dagster import AutomationCondition

# Requested once parents are updated and none is missing or in progress.
CASCADE = AutomationCondition.eager()
