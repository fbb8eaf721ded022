"""Helper package of the saliency trust book.

Submodules (imported on demand, so ``import helpers`` stays cheap):

``helpers.config``
    Presets (``smoke``, ``default``, ``paper``) and the notebooks' parameters.
``helpers.data``
    The embedded synthetic chest-radiograph dataset and the RSNA / SIIM /
    folder loaders (DICOM, RSNA CSV, SIIM RLE).
``helpers.models``
    Model zoo (single-channel torchvision architectures with ReLU modules and a
    small CNN), seeded training with early stopping, and the weights cache.
``helpers.saliency``
    The registry of saliency methods (the eight of Arun et al. 2021 and more)
    behind one ``explain`` function, with the paper's post-processing.
``helpers.metrics``
    Localization utility, map similarity, baselines and statistics.
``helpers.randomization``
    Cascading / independent weight randomization by named blocks.
``helpers.book``
    Executes the notebooks with papermill and builds the Jupyter Book.
"""

__version__ = "0.1.0"
