"""Arena: side-by-side battles between two anonymous models, and the leaderboard they feed.

`leaderboard` is pure maths (numpy only, no Gradio, no store) so it can be tested and
benchmarked alone; the battle UI and the store call it with plain battle records.
"""
