"""Importing this module registers every attention module (one per file) with the registry."""

from blocks.attention.bam import BAM
from blocks.attention.cbam import CBAM
from blocks.attention.eca import ECA, eca_kernel
from blocks.attention.gc import GC
from blocks.attention.se import SE, reduced_channels
from blocks.attention.sge import SGE
from blocks.attention.srm import SRM

__all__ = ["BAM", "CBAM", "ECA", "GC", "SE", "SGE", "SRM", "eca_kernel", "reduced_channels"]
