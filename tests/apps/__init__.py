"""Small HTTP apps that integration tests run behind wiretape as real processes."""
