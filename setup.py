"""Installs the five MuseTag packages; pins come from requirements*.txt (one source of truth)."""
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).parent


def _requirements(name):
    lines = (HERE / name).read_text().splitlines()
    return [ln.split('#')[0].strip() for ln in lines if ln.split('#')[0].strip()]


setup(
    name='musetag',
    version='0.1.0',
    description='Music audio auto-tagging at scale with TensorFlow/Keras (MSD + Last.fm, Pons et al. 2018, musicnn).',
    python_requires='>=3.11,<3.12',
    packages=['msd', 'preprocessing', 'modeling', 'training', 'evaluation'],
    package_data={'msd': ['lists/*.txt']},
    install_requires=_requirements('requirements.txt'),
    extras_require={'dev': _requirements('requirements-dev.txt')},
    entry_points={'console_scripts': [
        'musetag-msd=msd.__main__:main',
        'musetag-preprocess=preprocessing.__main__:main',
        'musetag-train=training.__main__:main',
        'musetag-test-model=evaluation.test_model:main',
    ]},
)
