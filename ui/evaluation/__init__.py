"""The studio's Evaluate tab: blind A/B comparisons and ratings of CoDi systems
(codi.evaluation does the storage, generation, statistics and archives)."""

from ui.evaluation.engine import Evaluator, resolve_data_dir
from ui.evaluation.tab import build_evaluation_tab

__all__ = ["Evaluator", "build_evaluation_tab", "resolve_data_dir"]
