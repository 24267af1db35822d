"""Installs the MuseTag packages and the ``musetag`` command; pins come from requirements*.txt."""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def _requirements(name):
    lines = (HERE / name).read_text().splitlines()
    return [ln.split('#')[0].strip() for ln in lines if ln.split('#')[0].strip()]


setup(
    name='musetag',
    version='0.1.0',
    description=('Music audio auto-tagging and similarity search at scale with TensorFlow/Keras '
                 '(MSD, MagnaTagATune, MTG-Jamendo, your own folder).'),
    python_requires='>=3.11,<3.12',
    packages=find_packages(include=['core', 'msd', 'msd.*', 'sources', 'sources.*', 'preprocessing', 'modeling',
                                    'training', 'evaluation', 'evaluation.*', 'retrieval', 'retrieval.*',
                                    'latent', 'latent.*', 'imagemusic', 'imagemusic.*', 'webapp', 'webapp.*',
                                    'musetag']),
    package_data={'msd': ['lists/*.txt'], 'sources': ['lists/*.txt'], 'webapp': ['static/*']},
    install_requires=_requirements('requirements.txt'),
    extras_require={'dev': _requirements('requirements-dev.txt')},
    entry_points={'console_scripts': [
        'musetag=musetag.cli:run',
        'musetag-msd=msd.__main__:main',
        'musetag-preprocess=preprocessing.__main__:main',
        'musetag-train=training.__main__:main',
        'musetag-test-model=evaluation.test_model:main',
    ]},
)
