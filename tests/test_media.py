"""A group's avatar and header: checked and re-encoded with Pillow, stored, served, federated.

The pure checks (``server.images.prepare``) with real files of every kind Pillow writes,
hostile ones included; then, on SQLite and PostgreSQL, with the test world (bookclub,
owner mod1, moderator mod2, members alice and bob on two fake servers that verify every
signature): the actor document, the content-addressed URLs and their caching, removal,
the ``Update(Group)`` the members' servers receive, ``kith group edit`` and the console's form.
"""

from __future__ import annotations

import asyncio
import io
import json
import struct
import zlib
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from PIL import Image, PngImagePlugin

from server.accounts import create_user, set_password
from server.errors import BadRequest, Forbidden, PayloadTooLarge
from server.images import MAX_BYTES, MAX_PIXELS, prepare
from server.moderation.actions import group_and_moderator
from server.moderation.profiles import ProfileEdit, edit_profile
from server.tables import group_media, mod_log
from tests.console_helpers import page_csrf, sign_in
from tests.fakes.world import GROUP, World
from tests.shell import kith

ACTIVITY_JSON = {"Accept": "application/activity+json"}
CONSOLE = "/console/groups/bookclub"
PASSWORD = "correct horse battery"
RED, BLUE = (220, 20, 30), (20, 40, 220)


# --------------------------------------------------------------------------- files


def picture(fmt: str, size: tuple[int, int] = (800, 600), mode: str = "RGB", color: Any = RED, **save: Any) -> bytes:
    """A plain picture in ``fmt`` as Pillow writes it."""
    out = io.BytesIO()
    Image.new(mode, size, color).save(out, fmt, **save)
    return out.getvalue()


def noise(fmt: str, size: tuple[int, int] = (600, 600)) -> bytes:
    """A picture that does not compress away (cut short, it loses real image data)."""
    out = io.BytesIO()
    Image.effect_noise(size, 80).convert("RGB").save(out, fmt)
    return out.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels: a decompression bomb's opening."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(b"\0" * 1024)) + _chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def near(pixel: Any, color: tuple[int, int, int]) -> bool:
    return all(abs(a - b) <= 24 for a, b in zip(pixel[:3], color, strict=True))


# --------------------------------------------------------------------------- the pure checks


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
@pytest.mark.parametrize(("kind", "box"), [("icon", (400, 400)), ("image", (1500, 500))])
def test_png_jpeg_and_webp_are_cropped_to_mastodons_boxes(fmt: str, kind: str, box: tuple[int, int]) -> None:
    for size in [(800, 600), (300, 900), (120, 80)]:  # wide, tall, and smaller than the box (scaled up)
        done = prepare(picture(fmt, size), kind)
        image = opened(done.data)
        assert image.size == box == (done.width, done.height), (fmt, size)
        assert done.content_type == "image/jpeg" and image.format == "JPEG"  # opaque: JPEG
        assert near(image.getpixel((box[0] // 2, box[1] // 2)), RED)
        assert len(done.digest) == 64


def test_the_crop_keeps_the_centre() -> None:
    wide = Image.new("RGB", (1200, 400), BLUE)
    wide.paste(Image.new("RGB", (400, 400), RED), (400, 0))  # the middle third red
    out = io.BytesIO()
    wide.save(out, "PNG")
    avatar = opened(prepare(out.getvalue(), "icon").data)
    assert near(avatar.getpixel((10, 200)), RED) and near(avatar.getpixel((390, 200)), RED)


def test_transparency_keeps_png_and_an_opaque_alpha_channel_does_not() -> None:
    see_through = Image.new("RGBA", (500, 500), (*RED, 255))
    see_through.paste((0, 0, 0, 0), (0, 0, 250, 500))
    for fmt in ("PNG", "WEBP"):
        out = io.BytesIO()
        see_through.save(out, fmt, lossless=True)
        done = prepare(out.getvalue(), "icon")
        image = opened(done.data)
        assert (done.content_type, image.format, image.mode) == ("image/png", "PNG", "RGBA")
        assert image.getpixel((50, 200))[3] == 0 and image.getpixel((350, 200))[3] == 255
    opaque = prepare(picture("PNG", mode="RGBA", color=(*RED, 255)), "icon")
    assert opaque.content_type == "image/jpeg"


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_an_animation_keeps_its_first_frame(fmt: str) -> None:
    frames = [Image.new("RGB", (300, 300), color) for color in (RED, BLUE, (20, 200, 40))]
    out = io.BytesIO()
    frames[0].save(out, fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(io.BytesIO(out.getvalue())).n_frames == 3
    image = opened(prepare(out.getvalue(), "icon").data)
    assert getattr(image, "n_frames", 1) == 1 and near(image.getpixel((200, 200)), RED)


def test_metadata_is_gone_and_the_picture_turned_upright() -> None:
    # Stored on its side (left half red, right half blue) with EXIF orientation 6: shown
    # turned a quarter clockwise, red on top. And a camera, a GPS position, a comment.
    stored = Image.new("RGB", (600, 300), BLUE)
    stored.paste(Image.new("RGB", (300, 300), RED), (0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation
    exif[0x010F] = "SpyCam"  # Make
    exif[0x8825] = {1: "N", 2: (51.0, 30.0, 0.0)}  # GPSInfo
    out = io.BytesIO()
    stored.save(out, "JPEG", exif=exif, comment=b"secret place", icc_profile=b"\0" * 128)
    source = Image.open(io.BytesIO(out.getvalue()))
    assert source.getexif()[0x010F] == "SpyCam" and "icc_profile" in source.info  # the upload carries them

    image = opened(prepare(out.getvalue(), "icon").data)
    assert dict(image.getexif()) == {}
    assert not {"exif", "icc_profile", "comment", "xmp"} & set(image.info)
    assert b"SpyCam" not in prepare(out.getvalue(), "icon").data
    assert near(image.getpixel((300, 50)), RED) and near(image.getpixel((100, 350)), BLUE)  # upright

    text = PngImagePlugin.PngInfo()
    text.add_text("Author", "someone@home")
    png = io.BytesIO()
    Image.new("RGBA", (200, 200), (*RED, 128)).save(png, "PNG", pnginfo=text)
    cleaned = prepare(png.getvalue(), "icon")
    assert b"someone@home" not in cleaned.data and "Author" not in opened(cleaned.data).info


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (picture("GIF"), "the file is a GIF image; only PNG, JPEG and WebP are accepted"),
        (picture("BMP"), "the file is a BMP image; only PNG, JPEG and WebP are accepted"),
        (picture("TIFF"), "the file is a TIFF image; only PNG, JPEG and WebP are accepted"),
        (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', "the file is an SVG image"),
        (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>', "the file is an SVG image"),
        (b"just some text, not a picture\n", "the file is not an image Kith accepts: PNG, JPEG or WebP only"),
        (b"", "the file is empty"),
        (noise("PNG")[:4000], "the file is not a whole image (damaged or cut short)"),
        (noise("JPEG")[:4000], "the file is not a whole image (damaged or cut short)"),
        (noise("WEBP")[:4000], "the file is not a whole image (damaged or cut short)"),
        (picture("PNG")[:30], "the file is not a whole image (damaged or cut short)"),
        # Pillow's own refusal (over twice its limit), its warning (over its limit), and Kith's lower cap:
        (png_claiming(50000, 50000), f"the image has too many pixels (at most {MAX_PIXELS:,})"),
        (png_claiming(10000, 10000), f"the image has too many pixels (at most {MAX_PIXELS:,})"),
        (png_claiming(8000, 4500), f"the image is 8000×4500 pixels; at most {MAX_PIXELS:,}"),
        (png_claiming(0, 10), "the file is not a whole image"),
    ],
    ids=[
        "gif",
        "bmp",
        "tiff",
        "svg-xml",
        "svg",
        "text",
        "empty",
        "png-cut",
        "jpeg-cut",
        "webp-cut",
        "png-header-cut",
        "bomb-50000",
        "bomb-10000",
        "over-the-cap",
        "no-width",
    ],
)
def test_what_is_refused_and_why(data: bytes, reason: str) -> None:
    with pytest.raises(BadRequest, match="^" + reason.replace("(", r"\(").replace(")", r"\)")):
        prepare(data, "icon")


def test_a_file_over_8_mib_is_refused_before_it_is_decoded() -> None:
    huge = picture("PNG", (64, 64)) + b"\0" * MAX_BYTES  # a valid PNG with junk after it
    with pytest.raises(PayloadTooLarge, match="the file is larger than 8 MiB"):
        prepare(huge, "icon")
    with pytest.raises(BadRequest, match="unknown image kind"):
        prepare(picture("PNG"), "banner")


# --------------------------------------------------------------------------- stored, served, federated


async def actor_doc(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await client.get(GROUP, headers=ACTIVITY_JSON)
    assert r.status_code == 200
    return r.json()


async def edits(world: World) -> list[tuple[str, str]]:
    async with world.services.db.read() as conn:
        rows = await conn.execute(
            sa.select(mod_log.c.moderator, mod_log.c.reason).where(mod_log.c.action == "edit").order_by(mod_log.c.id)
        )
        return [(r.moderator, r.reason) for r in rows]


async def set_media(world: World, user: str, **media: bytes | None) -> None:
    group, by = await group_and_moderator(world.services, "bookclub", user)
    await edit_profile(world.services, group, ProfileEdit(), by=by, media=media)


def updates(world: World) -> list[dict[str, Any]]:
    """The Update(Group) each member server received, verified: (alice's, bob's) per update."""
    found = []
    for server in world.servers:
        for got in server.of_type("Update"):
            assert got.signer == GROUP  # the fake server verified the group's signature
            found.append(got.activity["object"])
    return found


async def test_the_owner_sets_both_and_members_get_the_update_with_them(world: World):
    jpeg, png = picture("JPEG", (1000, 700)), noise("PNG", (1600, 600))
    await set_media(world, "mod1", icon=jpeg, image=png)

    doc = await actor_doc(world.client)
    icon, header = doc["icon"], doc["image"]
    assert icon["type"] == "Image" and icon["mediaType"] == "image/jpeg"
    assert header["type"] == "Image" and header["mediaType"] == "image/jpeg"
    assert icon["url"].startswith(f"{GROUP}/media/icon-") and icon["url"].endswith(".jpg")
    assert header["url"].startswith(f"{GROUP}/media/image-")

    r = await world.client.get(icon["url"])
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert r.headers["x-content-type-options"] == "nosniff"
    digest = icon["url"].rsplit("-", 1)[1].split(".")[0]
    assert r.headers["etag"] == f'"{digest}"'
    assert opened(r.content).size == (400, 400)
    assert opened((await world.client.get(header["url"])).content).size == (1500, 500)
    for etag in (f'"{digest}"', f'W/"{digest}"', f'"other", "{digest}"', "*"):
        again = await world.client.get(icon["url"], headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b"", etag
        assert again.headers["etag"] == f'"{digest}"' and "immutable" in again.headers["cache-control"]
    assert (await world.client.get(icon["url"], headers={"If-None-Match": '"other"'})).status_code == 200

    await world.worker.drain()
    sent = updates(world)
    assert len(sent) == 2  # one Update, to alice's server and to bob's
    for obj in sent:
        assert obj["icon"] == icon and obj["image"] == header
        assert {k: v for k, v in doc.items() if k != "@context"} == obj  # what the id serves
    assert await edits(world) == [("mod1", "changed avatar, header")]

    page = (await world.client.get(GROUP)).text
    assert f'<img class="group-avatar" src="{icon["url"]}"' in page
    assert f'<img class="group-banner" src="{header["url"]}"' in page


async def test_replacing_and_removing_drop_the_old_urls(world: World):
    await set_media(world, "mod1", icon=picture("PNG", color=RED))
    first = (await actor_doc(world.client))["icon"]["url"]
    await set_media(world, "mod1", icon=picture("PNG", color=RED))  # the same picture again: no change
    assert (await actor_doc(world.client))["icon"]["url"] == first
    assert len(await edits(world)) == 1

    await set_media(world, "mod2", icon=picture("WEBP", color=BLUE))  # a moderator may, as with the profile
    second = (await actor_doc(world.client))["icon"]["url"]
    assert second != first
    assert (await world.client.get(first)).status_code == 404  # the old address is gone
    assert near(opened((await world.client.get(second)).content).getpixel((5, 5)), BLUE)

    await set_media(world, "mod1", icon=None)
    doc = await actor_doc(world.client)
    assert "icon" not in doc and "image" not in doc
    assert (await world.client.get(second)).status_code == 404
    assert 'class="group-avatar"' not in (await world.client.get(GROUP)).text
    await set_media(world, "mod1", icon=None)  # nothing left to remove: no change, nothing sent
    assert await edits(world) == [("mod1", "changed avatar"), ("mod2", "changed avatar"), ("mod1", "removed avatar")]

    await world.worker.drain()
    sent = updates(world)
    assert len(sent) == 6  # three changes, to two servers each
    assert [("icon" in obj) for obj in sent[:3]] == [True, True, False]  # alice's server, in order
    assert sent[1]["icon"]["url"] == second


async def test_unknown_or_malformed_media_urls_are_404(world: World):
    await set_media(world, "mod1", icon=picture("PNG"))
    url = (await actor_doc(world.client))["icon"]["url"]
    digest = url.rsplit("-", 1)[1].split(".")[0]
    for path in [
        f"/groups/bookclub/media/icon-{'0' * 64}.jpg",
        f"/groups/bookclub/media/icon-{digest}.png",  # right digest, wrong type
        f"/groups/bookclub/media/image-{digest}.jpg",  # right digest, wrong kind
        f"/groups/nosuch/media/icon-{digest}.jpg",
        f"/groups/bookclub/media/icon-{digest.upper()}.jpg",
        "/groups/bookclub/media/..%2f..%2fetc%2fpasswd",
        "/groups/bookclub/media/icon.jpg",
    ]:
        r = await world.client.get(path)
        assert r.status_code == 404, path


async def test_who_leads_nothing_may_not_and_a_bad_file_changes_nothing(world: World):
    await create_user(world.services.db, "stranger")
    with pytest.raises(Forbidden, match="stranger is not a moderator of bookclub"):
        await set_media(world, "stranger", icon=picture("PNG"))
    with pytest.raises(BadRequest, match="GIF"):
        await set_media(world, "mod1", icon=picture("PNG"), image=picture("GIF"))  # one bad: neither is stored
    with pytest.raises(BadRequest, match="unknown picture"):
        await set_media(world, "mod1", banner=picture("PNG"))
    async with world.services.db.read() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(group_media))).scalar_one() == 0
    assert await edits(world) == []
    await world.worker.drain()
    assert updates(world) == []


# --------------------------------------------------------------------------- kith group edit


async def test_kith_group_edit_sets_and_removes_them(world: World, settings, tmp_path: Path):
    avatar, header = tmp_path / "me.webp", tmp_path / "banner.jpg"
    avatar.write_bytes(picture("WEBP", (900, 900)))
    header.write_bytes(picture("JPEG", (3000, 1000)))
    edit = ("group", "edit", "bookclub", "--as", "mod1")
    r = await asyncio.to_thread(kith, settings, *edit, "--avatar", str(avatar), "--header", str(header))
    assert r.returncode == 0, r.stderr
    shown = json.loads(r.stdout)
    doc = await actor_doc(world.client)
    assert (shown["avatar"], shown["header"]) == (doc["icon"]["url"], doc["image"]["url"])
    await world.worker.drain()
    assert [obj["icon"]["url"] for obj in updates(world)] == [shown["avatar"]] * 2
    assert (
        json.loads((await asyncio.to_thread(kith, settings, "group", "show", "bookclub")).stdout)["avatar"]
        == (shown["avatar"])
    )

    r = await asyncio.to_thread(kith, settings, *edit, "--remove-header", "--title", "Book Club")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["header"] is None and json.loads(r.stdout)["avatar"] == shown["avatar"]
    assert "image" not in await actor_doc(world.client)
    assert (await edits(world))[-1] == ("mod1", "changed title; removed header")


async def test_kith_group_edit_refuses_with_one_line(world: World, settings, tmp_path: Path):
    await create_user(world.services.db, "stranger")
    files = {
        "cat.gif": picture("GIF"),
        "logo.svg": b'<svg xmlns="http://www.w3.org/2000/svg"/>',
        "old.bmp": picture("BMP"),
        "notes.png": b"this is text named .png",
        "huge.png": picture("PNG", (64, 64)) + b"\0" * MAX_BYTES,
        "ok.png": picture("PNG"),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    cases = [
        ("mod1", "--avatar", "cat.gif", "the file is a GIF image; only PNG, JPEG and WebP are accepted"),
        ("mod1", "--header", "logo.svg", "the file is an SVG image; only PNG, JPEG and WebP are accepted"),
        ("mod1", "--avatar", "old.bmp", "the file is a BMP image; only PNG, JPEG and WebP are accepted"),
        ("mod1", "--avatar", "notes.png", "the file is not an image Kith accepts: PNG, JPEG or WebP only"),
        ("mod1", "--avatar", "huge.png", "the file is larger than 8 MiB"),
        ("mod1", "--avatar", "missing.png", "cannot read"),
        ("stranger", "--avatar", "ok.png", "stranger is not a moderator of bookclub"),
    ]
    for user, flag, name, reason in cases:
        r = await asyncio.to_thread(
            kith, settings, "group", "edit", "bookclub", "--as", user, flag, str(tmp_path / name)
        )
        assert r.returncode == 1, (name, r.stdout)
        assert r.stderr.count("\n") == 1 and r.stderr.startswith("kith: error: ") and reason in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
    r = await asyncio.to_thread(
        kith, settings, "group", "edit", "bookclub", "--as", "mod1", "--avatar", "x.png", "--remove-avatar"
    )
    assert r.returncode == 2 and "not allowed with argument" in r.stderr
    assert "icon" not in await actor_doc(world.client)
    assert await edits(world) == []


# --------------------------------------------------------------------------- the console


@pytest.fixture
async def signed_in(world: World) -> World:
    await set_password(world.services.db, "mod1", PASSWORD)
    assert (await sign_in(world.client, "mod1", PASSWORD)).status_code == 303
    return world


async def upload(client: httpx.AsyncClient, kind: str, data: bytes | None, *, action: str = "upload", **extra: Any):
    token = await page_csrf(client, f"{CONSOLE}/settings")
    files = {"file": ("picture.png", data, "image/png")} if data is not None else None
    return await client.post(
        f"{CONSOLE}/media", data={"csrf": token, "kind": kind, "action": action, **extra}, files=files
    )


async def test_the_console_uploads_and_removes(signed_in: World):
    world = signed_in
    page = (await world.client.get(f"{CONSOLE}/settings")).text
    assert f'action="{CONSOLE}/media" enctype="multipart/form-data"' in page
    assert page.count('value="upload" class="primary">Upload</button>') == 2
    assert ">Remove</button>" not in page  # nothing to remove yet

    r = await upload(world.client, "icon", picture("PNG", (640, 480)))
    assert r.status_code == 303 and r.headers["location"] == f"{CONSOLE}/settings?done=avatar"
    page = (await world.client.get(r.headers["location"])).text
    assert "Avatar saved." in page
    url = (await actor_doc(world.client))["icon"]["url"]
    assert f'src="{url}"' in page and ">Remove</button>" in page
    assert opened((await world.client.get(url)).content).size == (400, 400)

    r = await upload(world.client, "image", noise("WEBP", (2000, 800)))
    assert r.status_code == 303
    assert (await actor_doc(world.client))["image"]["mediaType"] == "image/jpeg"

    r = await upload(world.client, "icon", None, action="remove")
    assert r.status_code == 303 and r.headers["location"] == f"{CONSOLE}/settings?done=avatar-removed"
    doc = await actor_doc(world.client)
    assert "icon" not in doc and "image" in doc
    assert (await world.client.get(url)).status_code == 404
    assert await edits(world) == [("mod1", "changed avatar"), ("mod1", "changed header"), ("mod1", "removed avatar")]
    await world.worker.drain()
    assert [("icon" in o, "image" in o) for o in updates(world)][:3] == [(True, False), (True, True), (False, True)]


@pytest.mark.parametrize(
    ("data", "status", "reason"),
    [
        (picture("GIF"), 400, "avatar: the file is a GIF image; only PNG, JPEG and WebP are accepted"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", 400, "avatar: the file is an SVG image"),
        (b"hello", 400, "avatar: the file is not an image Kith accepts"),
        (noise("JPEG")[:3000], 400, "avatar: the file is not a whole image (damaged or cut short)"),
        (png_claiming(50000, 50000), 400, "avatar: the image has too many pixels"),
        (picture("PNG", (64, 64)) + b"\0" * MAX_BYTES, 413, "avatar: the file is larger than 8 MiB"),
    ],
    ids=["gif", "svg", "text", "jpeg-cut", "bomb", "over-8-mib"],
)
async def test_a_bad_file_gives_the_form_back_with_the_reason(signed_in: World, data: bytes, status: int, reason: str):
    world = signed_in
    r = await upload(world.client, "icon", data)
    assert r.status_code == status
    assert f"Not saved: {reason}" in r.text and 'role="alert"' in r.text
    assert 'enctype="multipart/form-data"' in r.text  # the form, to try again
    assert "icon" not in await actor_doc(world.client)
    assert await edits(world) == []


async def test_the_console_refuses_what_is_not_a_proper_upload(signed_in: World, app):
    world = signed_in
    r = await upload(world.client, "icon", None)  # Upload pressed with no file chosen
    assert r.status_code == 400 and "Not saved: avatar: choose a file first" in r.text
    r = await upload(world.client, "banner", picture("PNG"))
    assert r.status_code == 400 and "the form named no picture" in r.text
    r = await upload(world.client, "icon", picture("PNG"), action="explode")
    assert r.status_code == 400 and "unknown action" in r.text

    # No CSRF token, or a forged one: nothing changes.
    for data in ({"kind": "icon", "action": "upload"}, {"kind": "icon", "action": "upload", "csrf": "forged"}):
        r = await world.client.post(f"{CONSOLE}/media", data=data, files={"file": ("a.png", picture("PNG"))})
        assert r.status_code == 403 and "CSRF" in r.text

    # A body over the console's cap is refused before it is parsed, declared or not.
    token = await page_csrf(world.client, f"{CONSOLE}/settings")
    big = {"file": ("big.png", b"\0" * (9 * 1024 * 1024 + 10), "image/png")}
    r = await world.client.post(f"{CONSOLE}/media", data={"csrf": token, "kind": "icon", "action": "upload"}, files=big)
    assert r.status_code == 413 and "the form is larger than 9 MiB" in r.text

    async def trickle():
        for _ in range(10):
            yield b"\0" * (1024 * 1024)

    r = await world.client.post(
        f"{CONSOLE}/media", content=trickle(), headers={"Content-Type": "multipart/form-data; boundary=x"}
    )
    assert r.status_code == 413
    r = await world.client.post(
        f"{CONSOLE}/media", content=b"--x\r\nnot a part", headers={"Content-Type": "multipart/form-data; boundary=x"}
    )
    assert r.status_code == 400 and "the form could not be read" in r.text, r.text

    # Someone who leads nothing gets 403.
    await create_user(world.services.db, "nina", password=PASSWORD)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://kith.test") as nina:
        await sign_in(nina, "nina", PASSWORD)
        token = await page_csrf(nina)
        r = await nina.post(
            f"{CONSOLE}/media",
            data={"csrf": token, "kind": "icon", "action": "upload"},
            files={"file": ("a.png", picture("PNG"))},
        )
        assert r.status_code == 403 and "not a moderator of bookclub" in r.text
    assert "icon" not in await actor_doc(world.client)
    assert await edits(world) == []
