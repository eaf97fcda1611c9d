import pytest

from server.names import InvalidName, validate_name


@pytest.mark.parametrize("name", ["a", "book_club", "x" * 64, "g2", "_"])
def test_valid_names(name):
    assert validate_name(name) == name


@pytest.mark.parametrize("name", ["", "x" * 65, "Book", "book-club", "b c", "é", "a.b", "a@b"])
def test_invalid_names(name):
    with pytest.raises(InvalidName, match="lowercase letters"):
        validate_name(name)


@pytest.mark.parametrize("name", ["admin", "inbox", "actor", "api", "nodeinfo", "well_known"])
def test_reserved_names(name):
    with pytest.raises(InvalidName, match="reserved"):
        validate_name(name)
