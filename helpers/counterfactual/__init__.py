"""Counterfactual impact saliency (Major et al. 2020): temporary init while developing."""
from helpers.counterfactual.perturbations import *  # noqa
from helpers.counterfactual.optimize import *  # noqa
