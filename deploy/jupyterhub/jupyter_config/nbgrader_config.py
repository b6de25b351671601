"""nbgrader settings for everyone on the course's JupyterHub (students' servers, the formgrader).

The hub puts this folder on JUPYTER_CONFIG_PATH; a course directory's own nbgrader_config.py
is read after it. It swaps nbgrader's shared-folder exchange for the exchange service
(lossopt_exchange), which students cannot tamper with.
"""

import os

c = get_config()  # noqa: F821 (provided by nbgrader when it loads this file)

c.CourseDirectory.course_id = os.environ.get("LOSSOPT_COURSE", "lossopt")

PLUGIN = "lossopt_exchange.plugin."
c.ExchangeFactory.exchange = PLUGIN + "Exchange"
c.ExchangeFactory.fetch_assignment = PLUGIN + "ExchangeFetchAssignment"
c.ExchangeFactory.fetch_feedback = PLUGIN + "ExchangeFetchFeedback"
c.ExchangeFactory.release_assignment = PLUGIN + "ExchangeReleaseAssignment"
c.ExchangeFactory.release_feedback = PLUGIN + "ExchangeReleaseFeedback"
c.ExchangeFactory.list = PLUGIN + "ExchangeList"
c.ExchangeFactory.submit = PLUGIN + "ExchangeSubmit"
c.ExchangeFactory.collect = PLUGIN + "ExchangeCollect"
