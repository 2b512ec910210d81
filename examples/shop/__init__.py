"""The example shop API: the service that wiretape records and replays."""
