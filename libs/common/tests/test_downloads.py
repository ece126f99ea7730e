"""A download's headers: always an attachment, never sniffed, a filename no header can break."""

from pipedesk_common.downloads import attachment, download_headers


def test_a_filename_loses_path_separators_quotes_and_control_characters() -> None:
    assert attachment('../..\\etc/"passwd"\r\n.txt') == (
        "attachment; filename=\"....etcpasswd.txt\"; filename*=UTF-8''....etcpasswd.txt"
    )


def test_a_unicode_filename_has_an_ascii_fallback_and_its_utf8_form() -> None:
    assert attachment("Préçis 2026.pdf") == (
        "attachment; filename=\"Pr__is 2026.pdf\"; filename*=UTF-8''Pr%C3%A9%C3%A7is%202026.pdf"
    )


def test_a_name_of_nothing_printable_downloads_as_download() -> None:
    assert attachment("\x00\x07/") == "attachment; filename=\"download\"; filename*=UTF-8''download"


def test_a_download_is_never_rendered_or_sniffed() -> None:
    headers = download_headers("page.html")
    assert headers["Content-Disposition"].startswith("attachment;")
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in headers["Content-Security-Policy"]
