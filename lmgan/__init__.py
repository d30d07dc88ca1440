"""lmgan: train the Listen-and-Move sound-to-video GAN on one video, render video from any sound."""

__version__ = "0.1.0"
