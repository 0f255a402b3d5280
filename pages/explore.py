"""explore page (placeholder until its issue lands)."""
import streamlit as st

st.title("Explore")
st.info("Coming soon.")
