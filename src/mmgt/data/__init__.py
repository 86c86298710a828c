"""DataModules over a clip store: :class:`~mmgt.data.pose_audio.PoseAudioDataModule` (Stage I) and
:class:`~mmgt.data.video.VideoDataModule` (Stage II)."""
