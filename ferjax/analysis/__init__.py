"""Analysis of trained runs (issue 11; seeds 001–003): embedding geometry, loss landscape, Grad-CAM.

- :mod:`~ferjax.analysis.embedding`: class centres, target/non-target angles, t-SNE;
- :mod:`~ferjax.analysis.landscape`: the training loss around the trained weights (Li et al. 2018);
- :mod:`~ferjax.analysis.taps`: the one convention for reaching a model's feature maps;
- :mod:`~ferjax.analysis.gradcam`: Grad-CAM (Selvaraju et al. 2017) and overlays;
- :mod:`~ferjax.analysis.plots`: the figures. The command is :mod:`ferjax.analyze`.
"""
