"""compare.py's parts: compare.py keeps the command line and the plan; these modules do the work.

    runs     each training run in a child process of its own (one per implementation and device)
    proof    the twins are one network: lockstep losses, gradients, weight interchange, measured in the run
    tables   the comparison table, its formatting, CSV and Markdown
    plots    curves, timings, scaling, optimizers, sweep
    images   digits and weights: samples, confusions, misclassified digits, first-layer weights
"""
