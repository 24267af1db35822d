"""``python -m retrieval index|similar|playlist|embed …``: the retrieval commands (also ``musetag index``,
``musetag similar``, ``musetag playlist``, ``musetag embed``)."""

from core.cli import dispatch, exit_with

#: command -> (module, function); imported on use, so --help stays light
_COMMANDS = {'index': ('retrieval.cli', 'index_main'), 'similar': ('retrieval.cli', 'similar_main'),
             'playlist': ('retrieval.cli', 'playlist_main'), 'embed': ('retrieval.cli_embed', 'main')}


def main(argv=None, prog=None) -> int:
    return dispatch(_COMMANDS, argv, prog or 'python -m retrieval')


if __name__ == '__main__':
    exit_with(main())
