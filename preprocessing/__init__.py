"""preprocessing package of MuseTag."""
