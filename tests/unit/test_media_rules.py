"""The pure media rules, table-tested: content types, sniffing,
Content-Disposition and the thumbnail sizes."""

import pytest

from atomchat_server.events import media


@pytest.mark.parametrize(
    "header,expected",
    [
        (None, None),
        ("", None),
        ("image/PNG", "image/png"),
        ("image/jpg", "image/jpeg"),
        ("text/plain; charset=UTF-8", "text/plain; charset=utf-8"),
        ("text/plain", "text/plain"),
        ("application/json; charset=utf-8", "application/json"),
        ("nonsense", None),
        ("a/b/c", None),
        ("text/html\r\nX-Evil: 1", None),
    ],
)
def test_normalize_content_type(header, expected):
    assert media.normalize_content_type(header) == expected


@pytest.mark.parametrize(
    "head,expected",
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00", "image/png"),
        (b"\xff\xd8\xff\xe0", "image/jpeg"),
        (b"GIF89a..", "image/gif"),
        (b"GIF87a..", "image/gif"),
        (b"RIFF\x00\x00\x00\x00WEBP", "image/webp"),
        (b"RIFF\x00\x00\x00\x00WAVE", None),
        (b"<html>", None),
        (b"", None),
    ],
)
def test_sniff_image(head, expected):
    assert media.sniff_image(head) == expected


@pytest.mark.parametrize(
    "declared,head,expected",
    [
        ("image/png", b"\x89PNG\r\n\x1a\n", "image/png"),
        (None, b"\x89PNG\r\n\x1a\n", "image/png"),
        (None, b"hello", "application/octet-stream"),
        ("text/html", b"\x89PNG\r\n\x1a\n", "text/html"),
        ("image/svg+xml", b"<svg", "image/svg+xml"),
        ("image/jpeg", b"\x89PNG\r\n\x1a\n", ValueError),
        ("image/gif", b"hello", ValueError),
    ],
)
def test_stored_content_type(declared, head, expected):
    if expected is ValueError:
        with pytest.raises(ValueError):
            media.stored_content_type(declared, head)
    else:
        assert media.stored_content_type(declared, head) == expected


@pytest.mark.parametrize(
    "content_type,name,expected",
    [
        ("image/png", None, "inline"),
        ("image/png", "cat.png", "inline; filename*=utf-8''cat.png"),
        ("text/plain; charset=utf-8", "a b", "inline; filename*=utf-8''a%20b"),
        ("text/html", "x.html", "attachment; filename*=utf-8''x.html"),
        ("image/svg+xml", None, "attachment"),
        ("application/pdf", 'q";x', "attachment; filename*=utf-8''q%22%3Bx"),
        ("video/mp4", "é.mp4", "inline; filename*=utf-8''%C3%A9.mp4"),
    ],
)
def test_content_disposition(content_type, name, expected):
    assert media.content_disposition(content_type, name) == expected


@pytest.mark.parametrize(
    "name,ok",
    [
        ("a.txt", True),
        ("", False),
        ("a/b", False),
        ("a\\b", False),
        ("a\nb", False),
        ("x" * 255, True),
        ("x" * 256, False),
    ],
)
def test_acceptable_filename(name, ok):
    assert media.acceptable_filename(name) is ok


@pytest.mark.parametrize(
    "request_size,expected",
    [
        ((10, 10, "crop"), (32, 32, "crop")),
        ((33, 20, "crop"), (96, 96, "crop")),
        ((500, 500, "crop"), (96, 96, "crop")),
        ((10, 10, "scale"), (320, 240, "scale")),
        ((321, 10, "scale"), (640, 480, "scale")),
        ((1920, 1080, "scale"), (800, 600, "scale")),
    ],
)
def test_thumbnail_class(request_size, expected):
    assert media.thumbnail_class(*request_size) == expected


@pytest.mark.parametrize(
    "source,box,expected",
    [
        ((400, 300), (320, 240), (320, 240)),
        ((300, 1200), (640, 480), (120, 480)),
        ((100, 50), (800, 600), (100, 50)),
        ((5000, 1), (32, 32), (32, 1)),
    ],
)
def test_scaled_size(source, box, expected):
    assert media.scaled_size(source, box) == expected


@pytest.mark.parametrize(
    "source,box,expected",
    [
        ((400, 300), (96, 96), ((128, 96), (16, 0, 112, 96))),
        ((300, 1200), (32, 32), ((32, 128), (0, 48, 32, 80))),
        ((20, 10), (32, 32), ((20, 10), (0, 0, 20, 10))),
        ((100, 20), (32, 32), ((100, 20), (34, 0, 66, 20))),
    ],
)
def test_crop_plan(source, box, expected):
    assert media.crop_plan(source, box) == expected
