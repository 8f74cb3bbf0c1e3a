from setuptools import setup

setup(
    name="seesaw-nas",
    version="0.1.0",
    description="Neural architecture search over efficient-CNN blocks (Seesaw-Net, IGCV3, MobileNetV2, ShuffleNetV2, attention, WeightNet)",
    packages=["space", "blocks", "blocks.attention", "search"],
    py_modules=["launch_search"],
    python_requires=">=3.10",
    install_requires=[
        "torch>=2.1",
        "torchvision>=0.16",
        "optuna>=4.0",
        "pyyaml>=6.0",
        "tqdm>=4.60",
        "numpy>=1.24",
        "pillow>=9.0",
    ],
    extras_require={
        "ray": ["ray[tune]>=2.40"],
        "plots": ["plotly>=5.0", "kaleido>=0.2"],
        "test": ["pytest>=7.0"],
    },
    entry_points={"console_scripts": ["seesaw-nas=launch_search:main"]},
)
