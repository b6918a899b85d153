"""compare.py's parts: compare.py keeps the command line and the plan; these modules do the work.

    runs     training runs in worker processes (one per implementation and device), stored as they finish
    proof    the twins are one network: lockstep losses, gradients, weight interchange, measured in the run
    tables   the comparison table, its formatting, CSV and Markdown
    studies  the optimizer study, the batch-size scaling study and the sweep mode's grid
    plots    curves, timings, scaling, optimizers, sweep
    images   digits and weights: samples, confusions, misclassified digits, first-layer weights
"""
