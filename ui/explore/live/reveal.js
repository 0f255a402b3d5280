// The reveal: a marker below the Explore page's first screen. Once the page is scrolled near it (or it is on screen
// from the start, on a tall window) it tells Python, which then draws what lies below: the nearest images and the
// views. A new session's first screen is drawn without them, and so sooner.
// It starts watching only once the live parts above it are drawn (every .vx-root "ready"): before that they have no
// height yet, and the marker would seem to be on screen.
const READY_WAIT_MS = 15000; // a part that never gets ready (an error) must not keep the views away for good

export default function reveal({ parentElement, setTriggerValue }) {
  const marker = parentElement.querySelector(".vx-reveal");
  if (!marker || marker.__watching) return;
  marker.__watching = true;
  let observer = null, frame = null;
  const since = performance.now();
  const partsReady = () => {
    const parts = document.querySelectorAll(".vx-root");
    return parts.length > 0 && [...parts].every((part) => part.dataset.state === "ready");
  };
  const watch = () => {
    if (!partsReady() && performance.now() - since < READY_WAIT_MS) {
      frame = requestAnimationFrame(watch);
      return;
    }
    observer = new IntersectionObserver((entries) => {
      if (!entries.some((entry) => entry.isIntersecting)) return;
      observer.disconnect();
      setTriggerValue("seen", true);
    }, { rootMargin: "0px 0px 150px 0px" }); // a little early: the views are on their way as they scroll in
    observer.observe(marker);
  };
  watch();
  return () => {
    cancelAnimationFrame(frame);
    if (observer) observer.disconnect();
    marker.__watching = false;
  };
}
