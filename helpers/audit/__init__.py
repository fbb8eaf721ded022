"""Audit any chest X-ray classifier: the book's trust criteria on a given model and given images.

``python -m helpers.audit --model SPEC [--model SPEC ...] [--eval-data DIR [--eval-dataset folder|rsna|siim]]
[--preset NAME] [--param NAME=VALUE ...] --out DIR``
(also the ``saliency-audit`` command) loads the model(s) (:mod:`helpers.model_spec`:
``ARCH=WEIGHTS``, a TorchScript file, ``package.module:function[=WEIGHTS]``) with their
input contract (``model_channels``, ``model_normalization``, ``model_input_size``,
``model_class_index``), takes the evaluation images (``eval_dataset``/``eval_data_dir``, which may
hold positives only, or the test split of ``dataset``), runs the criteria through
:mod:`helpers.criteria` (the code the chapters call) and writes tidy scores, the verdicts table
under both rule sets and a one-page Markdown report (:func:`write_audit`).

========================  ==================================================================
:func:`run_audit`         compute (:class:`AuditResult`)
:func:`write_audit`       write ``scores_*.csv``, ``summary.csv``, ``audit.verdicts.csv``,
                          ``audit.json``, ``report.md``
:func:`main`              the command line
========================  ==================================================================

References
----------
.. [1] Arun, N. et al. (2021). Assessing the trustworthiness of saliency maps for localizing
   abnormalities in medical imaging. Radiology: Artificial Intelligence 3(6), e200267.
"""

from __future__ import annotations

from helpers.audit._run import AuditData, AuditModel, AuditResult, audit_data, run_audit
from helpers.audit.cli import main, parse_audit_params
from helpers.audit.report import REPORT_NAME, report_markdown, write_audit

__all__ = ["AuditData", "AuditModel", "AuditResult", "audit_data", "run_audit", "write_audit", "report_markdown",
           "REPORT_NAME", "main", "parse_audit_params"]
